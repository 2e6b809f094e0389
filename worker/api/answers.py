"""The job API's own answer documents (the job's are in :mod:`mobius_preview_client.contract.documents`).

Handlers annotate what they send with these types; :mod:`worker.api.openapi` describes the API
from the same types.
"""

from __future__ import annotations

from typing import Literal, NotRequired

from typing_extensions import TypedDict

from mobius_preview_client.contract.documents import JobState


class ApiError(TypedDict):
    """Every refusal: 401, 403, 404, 413, 415, 429 and 503."""

    error: str


class ViolationEntry(TypedDict):
    """One contract violation: where (a JSON path such as ``$.outputs[0].width``) and what."""

    path: str
    message: str


class InvalidJob(TypedDict):
    """400: the body is not JSON, or breaks the job contract; every violation is listed."""

    error: Literal["invalid job", "body is not valid JSON"]
    violations: list[ViolationEntry]


class Enqueued(TypedDict):
    """201: a new job was enqueued."""

    jobId: str
    created: Literal[True]


class AlreadyEnqueued(TypedDict):
    """200: a job with this ``jobId`` exists already; nothing was added."""

    jobId: str
    created: Literal[False]
    state: JobState


class QueueMetrics(TypedDict):
    """``GET /api/preview/queue/metrics``: job counts by state, the dead-letter queue's included."""

    queue: str
    dlqName: str
    waiting: int
    active: int
    completed: int
    failed: int
    delayed: int
    dlq: int


class RedisUp(TypedDict):
    """Redis answered the API's last check ``ageSeconds`` ago, at most
    ``PREVIEW_API_HEALTH_MAX_AGE_SECONDS``."""

    status: Literal["connected"]
    url: str
    ageSeconds: float


class RedisDown(TypedDict):
    """Redis's last check failed, or none answered within ``PREVIEW_API_HEALTH_MAX_AGE_SECONDS``;
    ``error`` is the exception's type, never its text (``TimeoutError``: no answer in time), and
    ``ageSeconds`` the time since Redis last answered (absent if it never has)."""

    status: Literal["disconnected"]
    url: str
    error: str
    ageSeconds: NotRequired[float]


class QueueCounts(TypedDict):
    """The queue's counts by state and their total (the dead-letter queue apart)."""

    name: str
    waiting: int
    active: int
    completed: int
    failed: int
    delayed: int
    total: int


class QueueName(TypedDict):
    """The queue, when its counts cannot be read."""

    name: str


class Healthy(TypedDict):
    """200 from the health route: Redis is reachable."""

    status: Literal["healthy"]
    timestamp: str
    redis: RedisUp
    queue: QueueCounts


class Unhealthy(TypedDict):
    """503 from the health route: Redis is not reachable."""

    status: Literal["unhealthy"]
    timestamp: str
    redis: RedisDown
    queue: QueueName
