"""The job API's route handlers: module-level functions reading their state from ``app.state``.

Each handler that needs a token is wrapped in :func:`requires` with the scope it needs; health
and ``/metrics`` are open.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from mobius_preview_client.client import AsyncPreviewClient
from mobius_preview_client.contract import jobid, validation
from mobius_preview_client.contract.documents import JobState
from mobius_preview_client.jobs import status as job_status
from worker import constants as c
from worker import logs
from worker.api import bodies, checking
from worker.api.answers import AlreadyEnqueued, Enqueued, QueueMetrics
from worker.api.auth import SCOPE_ENQUEUE, SCOPE_READ, Policy
from worker.api.readiness import RedisWatch
from worker.errors import QueueFullError
from worker.metrics import ApiMetrics
from worker.queue.queues import Queues
from worker.settings import Settings
from worker.store import ArtifactStore

log = logs.get("api")
Handler = Callable[[Request], Awaitable[Response]]
#: The challenge a 401 carries (RFC 6750).
CHALLENGE = 'Bearer realm="preview-api"'


@dataclass(frozen=True)
class ApiState:
    """What the handlers share, built once by :func:`worker.api.app.create_app`."""

    settings: Settings
    auth: Policy
    client: AsyncPreviewClient
    queues: Queues
    store: ArtifactStore
    metrics: ApiMetrics
    body_budget: bodies.BodyBudget
    checker: checking.Checker
    redis_watch: RedisWatch

    @property
    def body_limit(self) -> int:
        """The largest body worth reading: ``PREVIEW_API_MAX_BODY_BYTES``, or the largest job the
        inline cap allows if that is smaller (``validation.max_payload_bytes``, as ``validate`` uses)."""
        s = self.settings
        return min(s.api_max_body_bytes, validation.max_payload_bytes(s.inline_bytes))


def state(request: Request) -> ApiState:
    """The app's :class:`ApiState` (``app.state.api``)."""
    found: ApiState = request.app.state.api
    return found


#: The scope each guarded handler needs, as :func:`requires` declared it (read by the OpenAPI description).
_SCOPES: dict[Handler, str] = {}


def requires(scope: str) -> Callable[[Handler], Handler]:
    """Run the handler only for a bearer token granting ``scope``; else 401 (no valid token) or 403."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            refused = state(request).auth.refusal(request.headers.get("authorization"), scope)
            if refused is None:
                return await handler(request)
            status, message = refused
            return error(status, message, headers={"WWW-Authenticate": CHALLENGE} if status == 401 else None)

        _SCOPES[guarded] = scope
        return guarded

    return wrap


def scope_of(handler: Handler) -> str | None:
    """The scope ``handler`` requires, or None for an open route."""
    return _SCOPES.get(handler)


def error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """The API's error answer: ``{"error": message, ...extra}`` (:class:`ApiError`, :class:`InvalidJob`)."""
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


@requires(SCOPE_ENQUEUE)
async def enqueue(request: Request) -> Response:
    """``POST /job``: validate and enqueue a JSON job; 201 when new, 200 when the ID was known."""
    api = state(request)
    with api.metrics.enqueue.time():
        return await _enqueue(request, api)


async def _enqueue(request: Request, api: ApiState) -> Response:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":  # also refuses a browser's cross-site form POST
        return error(415, "Content-Type must be application/json")
    try:
        async with bodies.read(request, api.body_limit, api.body_budget) as body:
            return await _add(body, api)
    except bodies.Refused as refused:
        headers = {"Connection": "close"}  # the rest of the body, if any, is not read
        if refused.retry_after:
            headers["Retry-After"] = refused.retry_after
        where = refused.violation
        extra = {"violations": [{"path": where.path, "message": where.message}]} if where else {}
        return error(refused.status, refused.message, headers=headers, **extra)


async def _add(body: bytes, api: ApiState) -> Response:
    try:
        checked = await api.checker.run(body)  # a large body in another process (worker/api/checking.py)
    except BrokenProcessPool:  # the checking process died on it twice (killed, out of memory)
        log.warning("checking process ended while checking a body", extra={"bytes": len(body)})
        return error(503, "the body could not be checked; retry shortly", headers={"Retry-After": "5"})
    if not isinstance(checked, validation.Encoded):
        message, violations = checked
        return error(400, message, violations=[{"path": v.path, "message": v.message} for v in violations])
    del body  # the encoded job is what goes on; the caller's block still holds the body budget
    try:
        job = await api.client.add(checked)
    except QueueFullError as err:
        return error(429, str(err), headers={"Retry-After": "5"})
    if not job.created:
        known: AlreadyEnqueued = {"jobId": job.job_id, "created": False, "state": cast(JobState, job.state)}
        return JSONResponse(known, status_code=200)
    log.info("job enqueued", extra={"jobId": job.job_id, "new": True})
    new: Enqueued = {"jobId": job.job_id, "created": True}
    return JSONResponse(new, status_code=201)


@requires(SCOPE_READ)
async def status(request: Request) -> Response:
    """``GET /job/{job_id}/status``: the job's state, progress and result."""
    job_id = request.path_params["job_id"]
    found = await state(request).queues.with_state(job_id)  # None for an unsafe id too (jobid.safe)
    if found is None:
        return error(404, f"unknown job {jobid.shown(job_id)}")
    return JSONResponse(job_status(*found))


@requires(SCOPE_READ)
async def manifest(request: Request) -> Response:
    """``GET /job/{job_id}/artifact``: the artifact manifest, each rendition with its URL."""
    api, job_id = state(request), request.path_params["job_id"]
    found = await run_in_threadpool(api.store.load_manifest, job_id) if jobid.safe(job_id) else None
    if found is None:
        return error(404, f"no artifacts for job {jobid.shown(job_id)}")
    for entry in found["renditions"]:
        url = api.store.download(job_id, entry).url
        entry["url"] = url or str(request.url_for("rendition", job_id=job_id, name=entry["name"]))
    if api.store.kind == c.STORE_S3:
        found["urlExpiresInSeconds"] = api.settings.s3_url_ttl_seconds
    return JSONResponse(found)


@requires(SCOPE_READ)
async def rendition(request: Request) -> Response:
    """``GET /job/{job_id}/artifact/{name}``: the bytes (filesystem store) or a redirect (s3)."""
    api = state(request)
    job_id, name = request.path_params["job_id"], request.path_params["name"]
    found = await run_in_threadpool(api.store.find, job_id, name) if jobid.safe(job_id) else None
    if found is None:
        return error(404, f"no rendition {jobid.shown(name)} for job {jobid.shown(job_id)}")
    if found.url is not None:
        return RedirectResponse(found.url, status_code=307)
    return FileResponse(str(found.path), media_type=found.content_type)


@requires(SCOPE_READ)
async def queue_metrics(request: Request) -> Response:
    """``GET /queue/metrics``: the queue's job counts by state, the DLQ's included."""
    api = state(request)
    counts = await api.queues.counts()
    # counts has a key per constants.QUEUE_STATES, which QueueMetrics lists: mypy cannot see it in a dict.
    answer: QueueMetrics = {"queue": api.settings.queue_name, "dlqName": api.settings.dlq_name, **counts}  # type: ignore[typeddict-item]
    return JSONResponse(answer)


async def health(request: Request) -> Response:
    """``GET /api/preview/worker/health``: Redis reachable and the queue's counts (503 if not), from
    the newest background check (:class:`~worker.api.readiness.RedisWatch`): no Redis round trip
    here, so a slow Redis (behind a near-cap job's write) cannot delay the answer."""
    api = state(request)
    s = api.settings
    seen = api.redis_watch.seen()
    body: dict[str, Any] = {
        "status": "healthy",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "redis": {"status": "connected", "url": s.redacted_redis_url},
    }
    if seen.age is not None:
        body["redis"]["ageSeconds"] = round(seen.age, 3)
    if seen.counts is None:
        body["status"] = "unhealthy"
        body["redis"] |= {"status": "disconnected", "error": seen.error}
        body["queue"] = {"name": s.queue_name}
        return JSONResponse(body, status_code=503)
    counts = {k: v for k, v in seen.counts.items() if k != "dlq"}
    body["queue"] = {"name": s.queue_name, **counts, "total": sum(counts.values())}
    return JSONResponse(body)
