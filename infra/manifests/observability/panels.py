"""The titles of the dashboard's panels, declared once: each alert names the panel to open first
(its ``dashboard_panel`` annotation and its runbook's first line).

The dashboard (``dashboard.py`` beside this module, docs/dashboard.md) has one panel of each title.
"""

from __future__ import annotations

from typing import Final

JOBS_BY_OUTCOME: Final = "Jobs per second by outcome"
FAILURE_RATIO: Final = "Failure ratio"
JOB_DURATION: Final = "Job duration p50/p95/p99"
QUEUE_DEPTH: Final = "Queue depth by state"
PODS: Final = "Pods, ready and desired"
DLQ: Final = "DLQ size and growth"
REDIS_BUDGET: Final = "Redis memory budget used"
API_REQUESTS: Final = "API requests: rate, latency, 4xx/5xx"
RELEASE: Final = "Release and canary weight"
ERROR_BUDGET: Final = "Error budget remaining"

PANELS: Final = (
    JOBS_BY_OUTCOME,
    FAILURE_RATIO,
    JOB_DURATION,
    QUEUE_DEPTH,
    PODS,
    DLQ,
    REDIS_BUDGET,
    API_REQUESTS,
    RELEASE,
    ERROR_BUDGET,
)
