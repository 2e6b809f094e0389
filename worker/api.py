"""The job API: one small Starlette app (served by uvicorn via ``python -m worker api``).

Routes: enqueue, status, artifact manifest, rendition bytes, queue metrics,
health and Prometheus ``/metrics`` (request counts by route template, enqueue
latency; see :mod:`worker.api_metrics`). Redis errors and an unreachable artifact
store become 503; invalid jobs 400 with every violation and its JSON path; a full
queue 429. Artifacts come from
the configured store: the ``filesystem`` store's bytes are served here, the
``s3`` store's through presigned, expiring URLs.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from worker import auth, jobid, logs, store, validation
from worker import constants as c
from worker.api_metrics import DepthSampler, RequestMetrics, endpoint
from worker.client import PreviewClient, QueueFullError
from worker.errors import InvalidJobError, PreviewError
from worker.metrics import ApiMetrics
from worker.queue.queues import REDIS_DOWN
from worker.queue.queues import status as job_status
from worker.settings import Settings

log = logs.get("api")
PREFIX = "/api/preview"


class AuthNotConfiguredError(PreviewError):
    """Authentication is on (the default) and no token is configured: the API must not start."""


def create_app(settings: Settings) -> Starlette:
    """Build the API app bound to ``settings`` (one fail-fast Redis client per app).

    Raises :class:`AuthNotConfiguredError` when ``PREVIEW_API_TOKENS`` is empty and
    ``PREVIEW_API_AUTH`` is not ``off``.
    """
    tokens = auth.parse_tokens(settings.api_tokens.get_secret_value())
    if settings.api_auth == "tokens" and not tokens:
        raise AuthNotConfiguredError(
            f"{c.ENV_API_TOKENS} is empty: set one or more bearer tokens (comma-separated), "
            f"or {c.ENV_API_AUTH}=off to run the job API without authentication (local use only)"
        )
    if settings.api_auth == "off":
        log.warning("job API authentication is OFF (%s=off): anyone reaching it may use it", c.ENV_API_AUTH)

    def denied(request: Request, scope: str) -> Response | None:
        """401 without a valid token, 403 with one that lacks ``scope``; None when allowed."""
        if settings.api_auth == "off":
            return None
        granted = auth.scopes_of(auth.bearer(request.headers.get("authorization")), tokens)
        if not granted:
            challenge = {"WWW-Authenticate": 'Bearer realm="preview-api"'}
            return _error(401, "missing or invalid bearer token", headers=challenge)
        if scope not in granted:
            return _error(403, f"this token may not {scope}")
        return None

    client = PreviewClient(settings)  # enqueue goes through the same client producers use
    queues = client.queues
    artifact_store = store.from_settings(settings)
    metrics = ApiMetrics(settings.track, queue=settings.queue_name)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await queues.close()

    async def enqueue(request: Request) -> Response:
        if (refused := denied(request, auth.SCOPE_ENQUEUE)) is not None:
            return refused
        with metrics.enqueue_duration.labels(settings.track).time():
            return await _enqueue(request)

    async def _enqueue(request: Request) -> Response:
        kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != "application/json":  # also refuses a browser's cross-site form POST
            return _error(415, "Content-Type must be application/json")
        body = await _bounded_body(request, settings.api_max_body_bytes)
        if body is None:
            limit = settings.api_max_body_bytes
            return _error(413, f"request body over {limit} bytes", headers={"Connection": "close"})
        try:
            payload = validation.parse(body)
        except InvalidJobError as err:
            details = [{"path": v.path, "message": v.message} for v in err.violations]
            return _error(400, "body is not valid JSON", violations=details)
        try:
            job = await client.enqueue(payload)
        except InvalidJobError as err:
            details = [{"path": v.path, "message": v.message} for v in err.violations]
            return _error(400, "invalid job", violations=details)
        except QueueFullError as err:
            return _error(429, str(err), headers={"Retry-After": "5"})
        if not job.created:
            return JSONResponse({"jobId": job.job_id, "created": False, "state": job.state}, status_code=200)
        log.info("job enqueued", extra={"jobId": job.job_id, "new": True})
        return JSONResponse({"jobId": job.job_id, "created": True}, status_code=201)

    async def status(request: Request) -> Response:
        if (refused := denied(request, auth.SCOPE_READ)) is not None:
            return refused
        job_id = request.path_params["job_id"]
        job = await queues.get(job_id)
        if job is None:
            return _error(404, f"unknown job {job_id!r}")
        return JSONResponse(job_status(job, await job.getState()))

    async def manifest(request: Request) -> Response:
        if (refused := denied(request, auth.SCOPE_READ)) is not None:
            return refused
        job_id = request.path_params["job_id"]
        found = await run_in_threadpool(artifact_store.load_manifest, job_id) if _id_ok(job_id) else None
        if found is None:
            return _error(404, f"no artifacts for job {job_id!r}")
        for entry in found["renditions"]:
            url = artifact_store.download(job_id, entry).url
            entry["url"] = url or str(request.url_for("rendition", job_id=job_id, name=entry["name"]))
        if artifact_store.kind == c.STORE_S3:
            found["urlExpiresInSeconds"] = settings.s3_url_ttl_seconds
        return JSONResponse(found)

    async def rendition(request: Request) -> Response:
        if (refused := denied(request, auth.SCOPE_READ)) is not None:
            return refused
        job_id, name = request.path_params["job_id"], request.path_params["name"]
        found = await run_in_threadpool(artifact_store.find, job_id, name) if _id_ok(job_id) else None
        if found is None:
            return _error(404, f"no rendition {name!r} for job {job_id!r}")
        if found.url is not None:
            return RedirectResponse(found.url, status_code=307)
        return FileResponse(str(found.path), media_type=found.content_type)

    async def queue_metrics(request: Request) -> Response:
        if (refused := denied(request, auth.SCOPE_READ)) is not None:
            return refused
        counts = await queues.counts()
        return JSONResponse({"queue": settings.queue_name, "dlqName": settings.dlq_name, **counts})

    async def health(_: Request) -> Response:
        body: dict[str, Any] = {
            "status": "healthy",
            "timestamp": _now(),
            "redis": {"status": "connected", "url": settings.redacted_redis_url},
        }
        try:
            await queues.ping()
            counts = await queues.counts()
        except REDIS_DOWN as err:
            body["status"] = "unhealthy"
            body["redis"] = {
                "status": "disconnected",
                "url": settings.redacted_redis_url,
                "error": type(err).__name__,
            }
            body["queue"] = {"name": settings.queue_name}
            return JSONResponse(body, status_code=503)
        counts.pop("dlq")
        body["queue"] = {"name": settings.queue_name, **counts, "total": sum(counts.values())}
        return JSONResponse(body)

    routes = [
        Route(f"{PREFIX}/job", enqueue, methods=["POST"]),
        Route(f"{PREFIX}/job/{{job_id}}/status", status, methods=["GET"]),
        Route(f"{PREFIX}/job/{{job_id}}/artifact", manifest, methods=["GET"]),
        Route(f"{PREFIX}/job/{{job_id}}/artifact/{{name}}", rendition, methods=["GET"], name="rendition"),
        Route(f"{PREFIX}/queue/metrics", queue_metrics, methods=["GET"]),
        Route(c.API_HEALTH_PATH, health, methods=["GET"]),
        endpoint(metrics, DepthSampler(metrics, queues.counts)),
    ]
    handlers: dict[Any, Any] = {exc: _redis_down for exc in REDIS_DOWN}
    handlers[store.StoreUnavailableError] = _store_down
    counting = Middleware(RequestMetrics, metrics=metrics, routes=routes)
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers, middleware=[counting])
    app.state.queues = queues  # so an embedding test or server can close the Redis client
    app.state.metrics = metrics
    return app


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``limit`` (by its length, or while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None  # refused before a byte of it is read
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _redis_down(_: Request, err: Exception) -> Response:
    log.warning("redis unreachable", extra={"error": type(err).__name__})
    return _error(503, "redis unreachable", headers={"Retry-After": "5"})


async def _store_down(_: Request, err: Exception) -> Response:
    log.warning("artifact store unreachable", extra={"error": str(err)})
    return _error(503, "artifact store unreachable", headers={"Retry-After": "5"})


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _id_ok(job_id: str) -> bool:
    # Only syntactically valid job IDs reach the filesystem.
    return jobid.safe(job_id)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
