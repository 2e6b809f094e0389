"""Job ids: which a producer may choose, and which are safe to use as a folder or a Redis key.

The contract is the schema's ``jobId`` pattern (``schemas/preview-job.schema.json``), so
Node.js producers validating with the schema refuse the same ids. It refuses:

* anything but 1-128 of ``A-Z a-z 0-9 . _ -`` starting with a letter or digit, and a trailing
  newline (the pattern ends ``(?!\\n)$``: Python's ``$`` would otherwise let ``"abc\\n"`` through);
* integers (``0``, ``42``): BullMQ numbers its own jobs, so a custom ``42`` would pre-claim a
  later job's id, and Node.js BullMQ refuses them ("Custom Ids cannot be integers");
* the suffixes of the queue's own keys (``wait``, ``meta``, …): the job's hash is
  ``bull:<queue>:<jobId>``, so ``wait`` would overwrite the wait list and wedge the queue.

:func:`safe` is the weaker check for ids read back from Redis or a URL (auto ids are integers),
the one every route and client method that takes an id applies.
"""

from __future__ import annotations

import re

from bullmq.queue_keys import QueueKeys

#: An id that is a safe folder name and Redis key suffix (auto ids included).
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Every suffix of a queue's own keys (bullmq's list, plus its metrics keys' stem).
QUEUE_KEY_SUFFIXES = frozenset(name for name in QueueKeys().getKeys("queue") if name) | {"metrics"}


def safe(job_id: str) -> bool:
    """Whether ``job_id`` may name a folder and a Redis key (any id BullMQ or a producer made).

    The one id check of every route and client method that takes an id: ``meta`` or ``events``
    would read one of the queue's own keys as a job, and ``<job>:lock`` a job's lock.
    """
    return SAFE_ID.fullmatch(job_id) is not None and job_id not in QUEUE_KEY_SUFFIXES


def problem(job_id: str) -> str | None:
    """Why a producer may not choose ``job_id``, or None when it may (the schema's rule, in words)."""
    if job_id in QUEUE_KEY_SUFFIXES:
        return f"is the name of one of the queue's own Redis keys (bull:<queue>:{job_id})"
    if not safe(job_id):
        return "must be 1-128 of A-Z a-z 0-9 . _ - starting with a letter or digit, with no trailing newline"
    if job_id.isascii() and job_id.isdigit() and str(int(job_id)) == job_id:
        return "must not be an integer: BullMQ numbers its own jobs (Node.js BullMQ refuses these too)"
    return None


def shown(job_id: str, limit: int = 80) -> str:
    """``job_id`` fit to echo in an error: quoted, and cut to ``limit`` characters."""
    return repr(job_id[:limit]) + ("…" if len(job_id) > limit else "")
