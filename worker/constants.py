"""Names and fixed values shared by the worker and the deployment, grouped by topic.

This module is the single definition of every name that crosses the boundary between the
worker process and the Pulumi program (``infra/``): env vars, ports, paths, queue and metric
names, and the bounds both halves check. Tunable defaults are not here: they live once, in
``worker/tunables.py``. It imports nothing outside the standard library but the names a producer
shares with the worker, declared in ``mobius_preview_client/names.py`` (which the client wheel ships)
and re-exported here, so ``c.BULL_PREFIX`` is the client's own.
"""

from typing import Final

# Re-exported (``X as X``): declared once, in the client's names, and read here as ``c.X``.
# isort: off
from mobius_preview_client.names import (
    BULL_PREFIX as BULL_PREFIX,
    DLQ_RAW_KEEP_BYTES as DLQ_RAW_KEEP_BYTES,
    ENV_BACKOFF_MS as ENV_BACKOFF_MS,
    ENV_JOB_ATTEMPTS as ENV_JOB_ATTEMPTS,
    ENV_MAX_INLINE_BYTES as ENV_MAX_INLINE_BYTES,
    ENV_PATH_SOURCES as ENV_PATH_SOURCES,
    ENV_QUEUE_MAX as ENV_QUEUE_MAX,
    ENV_QUEUE_NAME as ENV_QUEUE_NAME,
    ENV_REDIS_URL as ENV_REDIS_URL,
    INLINE_BYTES_MAX_DEFAULT as INLINE_BYTES_MAX_DEFAULT,
    JOB_NAME as JOB_NAME,
    JOB_OPTS_MAX_BYTES as JOB_OPTS_MAX_BYTES,
    METADATA_MAX_BYTES as METADATA_MAX_BYTES,
    QUEUE_NAME_PATTERN as QUEUE_NAME_PATTERN,
    SCHEMA_FILE as SCHEMA_FILE,
)
# isort: on

# --- Connection and secrets -----------------------------------------------------------------
ENV_API_TOKENS: Final = "PREVIEW_API_TOKENS"  # the job API's bearer tokens (a secret)
#: A folder of secret env vars as files (a mounted Secret), watched for rotation (process/secret_files.py).
ENV_SECRETS_DIR: Final = "PREVIEW_SECRETS_DIR"
#: Where a stack's ``redisCa`` (a ConfigMap's CA certificate) is mounted: name it in REDIS_URL
#: as ``?ssl_ca_certs=<this>`` for a Redis with TLS from a private CA (mobius_preview_client/connections.py).
REDIS_CA_PATH: Final = "/etc/mobius-preview/redis-ca/ca.crt"
# S3 credentials are read by botocore's standard chain (these env vars, or a mounted
# AWS_SHARED_CREDENTIALS_FILE, or workload identity), never by the settings model.
ENV_S3_ACCESS_KEY_ID: Final = "AWS_ACCESS_KEY_ID"
ENV_S3_SECRET_ACCESS_KEY: Final = "AWS_SECRET_ACCESS_KEY"
ENV_S3_CREDENTIALS_FILE: Final = "AWS_SHARED_CREDENTIALS_FILE"
#: Secrets of the artifact store: like SECRET_ENV_VARS, from a Secret only and never logged.
STORE_SECRET_ENV_VARS: Final = frozenset({ENV_S3_ACCESS_KEY_ID, ENV_S3_SECRET_ACCESS_KEY})
#: Every env var that carries a secret: the deployment sources these from a Secret, never a
#: ConfigMap, and the worker never logs their values.
SECRET_ENV_VARS: Final = frozenset({ENV_REDIS_URL, ENV_API_TOKENS}) | STORE_SECRET_ENV_VARS

# --- The queue (BullMQ) and its jobs --------------------------------------------------------
ENV_CONCURRENCY: Final = "PREVIEW_WORKER_CONCURRENCY"
ENV_DRAIN_SECONDS: Final = "PREVIEW_DRAIN_SECONDS"
ENV_LOCK_MS: Final = "PREVIEW_LOCK_MS"
ENV_STALLED_INTERVAL_MS: Final = "PREVIEW_STALLED_INTERVAL_MS"
ENV_MAX_STALLED_COUNT: Final = "PREVIEW_MAX_STALLED_COUNT"
ENV_RUN_RETRY_DELAY_MS: Final = "PREVIEW_RUN_RETRY_DELAY_MS"
ENV_WORKER_PROCESSES: Final = "PREVIEW_WORKER_PROCESSES"
DLQ_SUFFIX: Final = "-dlq"

# --- How long Redis keeps finished jobs, and the Redis memory they may hold ------------------
ENV_KEEP_COMPLETED_SECONDS: Final = "PREVIEW_KEEP_COMPLETED_SECONDS"
ENV_KEEP_COMPLETED_COUNT: Final = "PREVIEW_KEEP_COMPLETED_COUNT"
ENV_KEEP_FAILED_SECONDS: Final = "PREVIEW_KEEP_FAILED_SECONDS"
ENV_KEEP_FAILED_COUNT: Final = "PREVIEW_KEEP_FAILED_COUNT"
ENV_KEEP_DLQ_SECONDS: Final = "PREVIEW_KEEP_DLQ_SECONDS"
ENV_KEEP_DLQ_COUNT: Final = "PREVIEW_KEEP_DLQ_COUNT"
KEEP_SECONDS_MAX: Final = 365 * 24 * 3600
KEEP_COUNT_MAX: Final = 1_000_000
#: The failed jobs the housekeeping sweep looks at each round (the newest; older ones were swept).
SWEEP_FAILED_WINDOW: Final = 1_000
ENV_REDIS_BUDGET_BYTES: Final = "PREVIEW_REDIS_BUDGET_BYTES"  # worker/queue/budget.py; `redisBudget`
REDIS_BUDGET_BYTES_DEFAULT: Final = 2 * 2**30
REDIS_BUDGET_BYTES_MIN: Final = 16 * 2**20
REDIS_BUDGET_BYTES_MAX: Final = 2**40

# --- Sources: files, URLs and their limits --------------------------------------------------
ENV_INPUT_ROOT: Final = "PREVIEW_INPUT_ROOT"
ENV_SOURCE_HOSTS: Final = "PREVIEW_SOURCE_HOSTS"
ENV_SOURCE_PRIVATE_ADDRESSES: Final = "PREVIEW_SOURCE_PRIVATE_ADDRESSES"  # "allow" lets URLs reach them
#: A host of PREVIEW_SOURCE_HOSTS and of the stack's sourceHosts: a DNS name or IPv4 address,
#: no scheme, no port (the port is its own field), at most 253 characters.
_HOST_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
SOURCE_HOST_PATTERN: Final = rf"^(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*$"
ENV_MAX_SOURCE_BYTES: Final = "PREVIEW_MAX_SOURCE_BYTES"
ENV_MAX_PIXELS: Final = "PREVIEW_MAX_PIXELS"
ENV_URL_TIMEOUT_SECONDS: Final = "PREVIEW_URL_TIMEOUT_SECONDS"

# --- Rendering: the render processes, their memory budget and time limit ---------------------
ENV_RENDER_PROCESSES: Final = "PREVIEW_RENDER_PROCESSES"
ENV_RENDER_MEMORY_BYTES: Final = "PREVIEW_RENDER_MEMORY_BYTES"
ENV_RENDER_TIMEOUT_SECONDS: Final = "PREVIEW_RENDER_TIMEOUT_SECONDS"
RENDER_PROCESSES_MAX: Final = 64
RENDER_MEMORY_BYTES_DEFAULT: Final = 256 * 2**20
RENDER_MEMORY_BYTES_MIN: Final = 32 * 2**20
RENDER_MEMORY_BYTES_MAX: Final = 64 * 2**30
RENDER_TIMEOUT_SECONDS_DEFAULT: Final = 60.0
RENDER_TIMEOUT_SECONDS_MAX: Final = 3600.0
#: Memory of a worker container besides its render processes' budgets: the consumer process and
#: each render process's own interpreter (measured: about 90 MiB and 45 MiB RSS). The stack gives
#: each render process (limit - WORKER_BASE - n x RENDER_PROCESS_BASE) / n.
WORKER_BASE_MEMORY_BYTES: Final = 128 * 2**20
RENDER_PROCESS_BASE_MEMORY_BYTES: Final = 64 * 2**20

# --- The artifact store ---------------------------------------------------------------------
ENV_DATA_DIR: Final = "DATA_DIR"
ENV_ARTIFACT_STORE: Final = "PREVIEW_ARTIFACT_STORE"  # "filesystem" (DATA_DIR) or "s3"
ENV_S3_BUCKET: Final = "PREVIEW_S3_BUCKET"
ENV_S3_PREFIX: Final = "PREVIEW_S3_PREFIX"
ENV_S3_ENDPOINT: Final = "PREVIEW_S3_ENDPOINT"
ENV_S3_PUBLIC_ENDPOINT: Final = "PREVIEW_S3_PUBLIC_ENDPOINT"
ENV_S3_REGION: Final = "PREVIEW_S3_REGION"
ENV_S3_ADDRESSING_STYLE: Final = "PREVIEW_S3_ADDRESSING_STYLE"
ENV_S3_URL_TTL_SECONDS: Final = "PREVIEW_S3_URL_TTL_SECONDS"
ENV_S3_TIMEOUT_SECONDS: Final = "PREVIEW_S3_TIMEOUT_SECONDS"
ENV_RETENTION_DAYS: Final = "PREVIEW_RETENTION_DAYS"
STORE_FILESYSTEM: Final = "filesystem"
STORE_S3: Final = "s3"
S3_BUCKET_PATTERN: Final = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
S3_PREFIX_PATTERN: Final = r"^$|^[A-Za-z0-9!_.*()'-][A-Za-z0-9!_.*()'/-]{0,254}$"
#: AWS's and the S3-compatible services' region names (``eu-central-1``, ``auto``, ``garage``).
S3_REGION_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,31}$"
S3_LIFECYCLE_RULE_ID: Final = "mobius-preview-retention"

# --- The job API ----------------------------------------------------------------------------
ENV_API_HOST: Final = "PREVIEW_API_HOST"
ENV_API_PORT: Final = "PREVIEW_API_PORT"
ENV_API_AUTH: Final = "PREVIEW_API_AUTH"  # "tokens" (default) or "off" for local use
ENV_API_MAX_BODY_BYTES: Final = "PREVIEW_API_MAX_BODY_BYTES"
API_MAX_BODY_BYTES_DEFAULT: Final = 16 * 2**20  # a 10 MiB inline source as base64, plus the rest
API_MAX_BODY_BYTES_MIN: Final = 4 * 2**10
API_MAX_BODY_BYTES_MAX: Final = 256 * 2**20
#: An accepted body costs the API up to this many times its size at once (the bytes, the decoded
#: JSON, the validation and Redis copies); the stack keeps `apiBodyBudgetBytes` (every body in
#: flight at once) times it under the API's memory limit.
API_BODY_MEMORY_FACTOR: Final = 8
#: Bodies this large or larger are parsed, validated and encoded in the API's checking process
#: (``worker/api/checking.py``), started by the first one: with a smaller body limit it never runs.
API_CHECK_PROCESS_FROM_BYTES: Final = 2**20
#: What the checking process costs the API's pod besides the bodies: an interpreter with the job
#: contract and ``multiprocessing``'s resource tracker (72 MiB measured), with room.
API_CHECK_PROCESS_BASE_BYTES: Final = 96 * 2**20
#: And per byte of the body it checks: the bytes, their text, the parsed job, the encoded job and
#: its pickle (6.1 times measured for a 14.5 MiB body).
API_CHECK_MEMORY_FACTOR: Final = 7
ENV_API_BODY_BUDGET_BYTES: Final = "PREVIEW_API_BODY_BUDGET_BYTES"
API_BODY_BUDGET_BYTES_MAX: Final = 2 * 2**30
ENV_API_HEADER_TIMEOUT_SECONDS: Final = "PREVIEW_API_HEADER_TIMEOUT_SECONDS"
ENV_API_BODY_TIMEOUT_SECONDS: Final = "PREVIEW_API_BODY_TIMEOUT_SECONDS"
ENV_API_KEEP_ALIVE_SECONDS: Final = "PREVIEW_API_KEEP_ALIVE_SECONDS"
ENV_API_MAX_CONNECTIONS: Final = "PREVIEW_API_MAX_CONNECTIONS"
ENV_API_HEALTH_MAX_AGE_SECONDS: Final = "PREVIEW_API_HEALTH_MAX_AGE_SECONDS"
#: The most bytes of one request head (request line and headers): h11's own default, said here.
API_MAX_HEAD_BYTES: Final = 16 * 2**10
#: The API pod's terminationGracePeriodSeconds, and the part of it uvicorn waits on SIGTERM for
#: connections and requests to finish before it cancels them (then the app's shutdown runs, Redis
#: is closed, and the process exits before the kubelet's SIGKILL).
API_GRACE_SECONDS: Final = 30
API_SHUTDOWN_SECONDS: Final = 20

# --- Ports and HTTP paths -------------------------------------------------------------------
API_PORT: Final = 3000
METRICS_PORT: Final = 9100
METRICS_PORT_NAME: Final = "metrics"
API_PORT_NAME: Final = "http"
LIVENESS_PATH: Final = "/healthz"
READINESS_PATH: Final = "/readyz"
METRICS_PATH: Final = "/metrics"
#: Every job API route is under it; an Ingress or HTTPRoute exposes this prefix only (not /metrics).
API_PATH_PREFIX: Final = "/api/preview"
API_HEALTH_PATH: Final = f"{API_PATH_PREFIX}/worker/health"

# --- Observability: logs, tracks and metric names (declared in worker/metrics.py) -----------
ENV_LOG_LEVEL: Final = "PREVIEW_LOG_LEVEL"
ENV_METRICS_PORT: Final = "PREVIEW_METRICS_PORT"
ENV_METRICS_HOST: Final = "PREVIEW_METRICS_HOST"
#: Where the worker's /healthz, /readyz and /metrics listen: an IPv4 address, ``::`` or ``::1``.
#: A pod needs every address (the kubelet probes and Prometheus scrapes the pod IP).
METRICS_HOST_DEFAULT: Final = "0.0.0.0"
_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
METRICS_HOST_PATTERN: Final = rf"^(?:{_OCTET}(?:\.{_OCTET}){{3}}|::|::1)$"
ENV_PROMETHEUS_MULTIPROC_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name
ENV_TRACK: Final = "PREVIEW_TRACK"
#: Tracks (canary vs stable), exported as the `track` label on every series.
TRACK_STABLE: Final = "stable"
TRACK_CANARY: Final = "canary"
TRACKS: Final = (TRACK_STABLE, TRACK_CANARY)
#: The release a process runs, exported as the `release` label on every series: the stack sets the
#: image digest's short form (``sha256-<12 hex>``, the pods' ``app.kubernetes.io/version``), which
#: changes with the pod template anyway, so the label adds no restart and no extra series churn.
ENV_RELEASE: Final = "PREVIEW_RELEASE"
RELEASE_LOCAL: Final = "local"  # a process started without a release (a laptop, a test)
#: A release id or digest short form: a Kubernetes label value, not empty (use with re.fullmatch).
RELEASE_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}"
RELEASE_RULE: Final = "must be 1-63 of A-Z a-z 0-9 . _ - starting with a letter or digit"
# Metric names: one prefix per subject, units in names, `_total` on counters (docs/metrics.md
# lists every series, generated from worker/metrics.py). `preview_worker_` is what a worker process
# does, `preview_api_` what a job API process does, and `preview_queue_` the shared queue's state,
# which both kinds read from Redis and export under one name (aggregate it with `max`, never `sum`).
METRIC_JOBS_TAKEN: Final = "preview_worker_jobs_taken_total"  # every job fetched, once per attempt
METRIC_JOB_OUTCOMES: Final = "preview_worker_job_outcomes_total"  # labels outcome, reason
METRIC_JOB_DURATION: Final = "preview_worker_job_duration_seconds"
#: Seconds from a job's enqueue (its BullMQ ``timestamp``) to its completion: the latency SLI.
METRIC_JOB_TURNAROUND: Final = "preview_worker_job_turnaround_seconds"
#: The turnaround histogram's buckets; a latency SLO's threshold must be one of them (the stack's
#: ``slos.latency.thresholdSeconds``), so the SLI counts jobs under it exactly, never interpolated.
JOB_TURNAROUND_BUCKETS: Final = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
METRIC_JOBS_IN_FLIGHT: Final = "preview_worker_jobs_in_flight"
METRIC_CONCURRENCY: Final = "preview_worker_concurrency"  # gauge: the jobs a process takes at once
METRIC_FETCHING: Final = "preview_worker_fetching"  # gauge: 1 while the newest fetch of a job worked
#: Housekeeping (sweep, DLQ trim, depth gauges): errors by step, and 1 once rounds keep failing.
METRIC_HOUSEKEEPING_ERRORS: Final = "preview_worker_housekeeping_errors_total"  # label `step`
METRIC_HOUSEKEEPING_FAILING: Final = "preview_worker_housekeeping_failing"
HOUSEKEEPING_STEPS: Final = ("sweep", "trim", "depth")
#: Consecutive housekeeping rounds with an error before METRIC_HOUSEKEEPING_FAILING turns 1.
HOUSEKEEPING_FAILING_ROUNDS: Final = 3
METRIC_QUEUE_DEPTH: Final = "preview_queue_jobs"  # gauge, labels `queue` and `state`
#: The queue's Redis memory (``INFO memory``), read by the housekeeping round's depth step: the
#: dashboard's Redis memory budget panel divides the first by ``redisBudget``, and shows it over
#: ``maxmemory`` (0: no limit) when Redis has one.
METRIC_REDIS_MEMORY_USED: Final = "preview_worker_redis_memory_used_bytes"
METRIC_REDIS_MAXMEMORY: Final = "preview_worker_redis_maxmemory_bytes"
METRIC_API_REQUESTS: Final = "preview_api_requests_total"
METRIC_API_ENQUEUE_DURATION: Final = "preview_api_enqueue_duration_seconds"
LABEL_TRACK: Final = "track"
LABEL_RELEASE: Final = "release"
LABEL_OUTCOME: Final = "outcome"
LABEL_REASON: Final = "reason"  # why a job failed, one of REASONS (bounded: never an error message)
LABEL_STATE: Final = "state"
LABEL_STEP: Final = "step"  # a housekeeping step, one of HOUSEKEEPING_STEPS
LABEL_QUEUE: Final = "queue"  # the BullMQ queue a depth is of: what an HPA's selector picks
#: Set on every series by the scrape (prometheus-operator's ServiceMonitor does), never by the worker.
LABEL_NAMESPACE: Final = "namespace"
LABEL_ROUTE: Final = "route"
LABEL_METHOD: Final = "method"
LABEL_STATUS: Final = "status"
#: ``route`` label of a request that matched no route (never the raw path: labels stay bounded).
ROUTE_UNMATCHED: Final = "unmatched"
OUTCOMES: Final = ("completed", "failed", "retried", "dlq", "dryrun", "invalid", "reused", "unrecorded")
# Every finished job is counted exactly once as one of FINISHED_OUTCOMES, when Redis recorded its
# finish (BullMQ's moveToFinished took it) or the housekeeping sweep dead-lettered it. "dlq" and
# "invalid" are counted in addition to "failed", "reused" in addition to "completed"; "retried"
# and "unrecorded" once per attempt. So failure ratios divide FAILED_OUTCOME by these and count
# each job once.
FINISHED_OUTCOMES: Final = ("completed", "dryrun", "failed")
FAILED_OUTCOME: Final = "failed"
#: A job refused as the producer sent it (counted besides FAILED_OUTCOME): not the service's failure,
#: so the availability SLI leaves it out (infra/promql.py).
INVALID_OUTCOME: Final = "invalid"
#: A completion from artifacts an earlier attempt stored (counted besides "completed"): that attempt
#: rendered the set, but its finish was never recorded (lost lock, Redis outage), so the job ran again.
REUSED_OUTCOME: Final = "reused"
#: An attempt that ended but whose finish Redis refused or never got (its lock was lost: the worker
#: stalled or Redis restarted); the stalled check runs the job again, so it is no job's outcome.
UNRECORDED_OUTCOME: Final = "unrecorded"
#: The ``reason`` label of an outcome: the class of error an attempt ended with (worker/errors.py
#: maps exception classes onto it). REASON_NONE for a good outcome; REASON_INTERNAL for anything
#: unclassified, so the label stays bounded whatever is raised.
REASON_NONE: Final = "none"
REASON_INVALID: Final = "invalid"  # the job as the producer sent it (InvalidJobError, poison)
REASON_SOURCE: Final = "source"  # fetching or reading the source failed
REASON_RENDER: Final = "render"  # the source cannot be decoded or rendered, the render process died
REASON_BUDGET: Final = "budget"  # the pixel guard or the render memory budget refused it
REASON_TIMEOUT: Final = "timeout"  # the render or the source fetch took too long
REASON_STORE: Final = "store"  # the artifact store could not be written
REASON_LOST: Final = "lost"  # failed by BullMQ itself (too many stalls), found by the housekeeping sweep
REASON_INTERNAL: Final = "internal"
REASONS: Final = (
    REASON_NONE, REASON_INVALID, REASON_SOURCE, REASON_RENDER, REASON_BUDGET, REASON_TIMEOUT,
    REASON_STORE, REASON_LOST, REASON_INTERNAL,
)  # fmt: skip
#: Outcomes of a job that finished well; each is timed from enqueue (METRIC_JOB_TURNAROUND).
GOOD_OUTCOMES: Final = ("completed", "dryrun")
#: Queue states reported as ``preview_queue_jobs{state=…}``; the autoscalers and alerts read these two.
STATE_WAITING: Final = "waiting"  # plain, prioritised and paused jobs: what scaling acts on
STATE_DLQ: Final = "dlq"
QUEUE_STATES: Final = (STATE_WAITING, "active", "completed", "failed", "delayed", STATE_DLQ)

# --- Files ----------------------------------------------------------------------------------
MANIFEST_FILE: Final = "manifest.json"
