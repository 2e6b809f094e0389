"""The names and values a producer shares with the worker, declared here once.

The worker's :mod:`worker.constants` imports them (so ``c.BULL_PREFIX`` is this object), and the
client wheel ships this file as it is: a producer and the worker agree by construction. Like
``worker.constants``, it imports nothing outside the standard library.
"""

from typing import Final

# --- Where the queue is ----------------------------------------------------------------------
ENV_REDIS_URL: Final = "REDIS_URL"
ENV_QUEUE_NAME: Final = "PREVIEW_QUEUE_NAME"
#: A queue name both halves accept (the worker's PREVIEW_QUEUE_NAME, the stack's worker.queueName).
QUEUE_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
QUEUE_NAME_DEFAULT: Final = "preview-jobs"
BULL_PREFIX: Final = "bull"  # BullMQ's default, so Node.js producers need no option
#: A BullMQ key prefix the client accepts (no ``:``, which separates the key's parts).
PREFIX_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
JOB_NAME: Final = "preview"  # BullMQ job name used by the API, the client and redrive

# --- Admission and the retry policy: the tunables' defaults and bounds -----------------------
ENV_QUEUE_MAX: Final = "PREVIEW_QUEUE_MAX"
QUEUE_MAX_DEFAULT: Final = 20
QUEUE_MAX_MAX: Final = 10_000_000
ENV_JOB_ATTEMPTS: Final = "PREVIEW_JOB_ATTEMPTS"
JOB_ATTEMPTS_DEFAULT: Final = 3
JOB_ATTEMPTS_MAX: Final = 100
ENV_BACKOFF_MS: Final = "PREVIEW_BACKOFF_MS"
BACKOFF_MS_DEFAULT: Final = 1000
BACKOFF_MS_MAX: Final = 3_600_000

# --- What a job may hold --------------------------------------------------------------------
ENV_MAX_INLINE_BYTES: Final = "PREVIEW_MAX_INLINE_BYTES"
#: PREVIEW_MAX_INLINE_BYTES=0 (the default) picks the largest inline cap the budget allows, up to this.
INLINE_BYTES_MAX_DEFAULT: Final = 10 * 2**20
#: The largest PREVIEW_MAX_INLINE_BYTES either side accepts.
INLINE_BYTES_MAX: Final = 2**30
ENV_PATH_SOURCES: Final = "PREVIEW_PATH_SOURCES"  # "on" (default) or "off": jobs naming a file are refused
#: A job's metadata as stored JSON (non-ASCII escaped, as BullMQ writes it) is at most this long:
#: room for the schema's 32 entries of 1 KiB of ASCII, not for six-byte escapes of all of them.
METADATA_MAX_BYTES: Final = 40 * 2**10
#: A job's ``opts`` as stored JSON: BullMQ's own options are a few hundred bytes.
JOB_OPTS_MAX_BYTES: Final = 64 * 2**10
#: A job read back from Redis that fails the JSON gate is dead-lettered with at most this many of
#: its raw bytes per field (``data``, ``opts``), base64; the failed job's hash keeps them all.
DLQ_RAW_KEEP_BYTES: Final = 16 * 2**10

# --- Files ----------------------------------------------------------------------------------
#: The job schema in the repository; the wheel ships it beside this module as SCHEMA_PACKAGED.
SCHEMA_FILE: Final = "schemas/preview-job.schema.json"
SCHEMA_PACKAGED: Final = "preview-job.schema.json"
