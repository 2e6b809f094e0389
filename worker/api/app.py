"""The job API: one small Starlette app (served by uvicorn via ``python -m worker api``).

Routes: enqueue, status, artifact manifest, rendition bytes, queue metrics,
health and Prometheus ``/metrics`` (request counts by route template, enqueue
latency; see :mod:`worker.api.instrumentation`). Redis errors and an unreachable artifact
store become 503; invalid jobs 400 with every violation and its JSON path; a full
queue 429. The handlers are in :mod:`worker.api.handlers`. Artifacts come from
the configured store: the ``filesystem`` store's bytes are served here, the
``s3`` store's through presigned, expiring URLs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker import constants as c
from worker import logs, store
from worker.api import handlers as h
from worker.api.auth import Policy, parse_tokens
from worker.api.handlers import ApiState, error
from worker.api.instrumentation import DepthSampler, RequestMetrics, endpoint
from worker.client import PreviewClient
from worker.errors import PreviewError
from worker.metrics import ApiMetrics
from worker.queue.queues import REDIS_DOWN
from worker.settings import Settings

log = logs.get("api")
PREFIX = c.API_PATH_PREFIX


class AuthNotConfiguredError(PreviewError):
    """Authentication is on (the default) and no token is configured: the API must not start."""


def create_app(settings: Settings) -> Starlette:
    """Build the API app bound to ``settings`` (one fail-fast Redis client per app).

    Raises :class:`AuthNotConfiguredError` when ``PREVIEW_API_TOKENS`` is empty and
    ``PREVIEW_API_AUTH`` is not ``off``.
    """
    policy = Policy(settings.api_auth != "off", parse_tokens(settings.api_tokens.get_secret_value()))
    if policy.enabled and not policy.tokens:
        raise AuthNotConfiguredError(
            f"{c.ENV_API_TOKENS} is empty: set one or more bearer tokens (comma-separated), "
            f"or {c.ENV_API_AUTH}=off to run the job API without authentication (local use only)"
        )
    if not policy.enabled:
        log.warning("job API authentication is OFF (%s=off): anyone reaching it may use it", c.ENV_API_AUTH)
    client = PreviewClient(settings)  # enqueue goes through the same client producers use
    metrics = ApiMetrics(settings.track, queue=settings.queue_name, release=settings.release)
    api = ApiState(settings, policy, client, client.queues, store.from_settings(settings), metrics)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await api.queues.close()

    routes = [
        Route(f"{PREFIX}/job", h.enqueue, methods=["POST"]),
        Route(f"{PREFIX}/job/{{job_id}}/status", h.status, methods=["GET"]),
        Route(f"{PREFIX}/job/{{job_id}}/artifact", h.manifest, methods=["GET"]),
        Route(f"{PREFIX}/job/{{job_id}}/artifact/{{name}}", h.rendition, methods=["GET"], name="rendition"),
        Route(f"{PREFIX}/queue/metrics", h.queue_metrics, methods=["GET"]),
        Route(c.API_HEALTH_PATH, h.health, methods=["GET"]),
        endpoint(metrics, DepthSampler(metrics, api.queues.counts)),
    ]
    on_error: dict[Any, Any] = {exc: _redis_down for exc in REDIS_DOWN}
    on_error[store.StoreUnavailableError] = _store_down
    counting = Middleware(RequestMetrics, metrics=metrics, routes=routes)
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=on_error, middleware=[counting])
    # No 307 to the path with(out) a trailing slash: its absolute Location came from the Host
    # header, answered before any token was looked at. A path with a stray slash is a 404.
    app.router.redirect_slashes = False
    app.state.api = api
    app.state.queues = api.queues  # so an embedding test or server can close the Redis client
    app.state.metrics = metrics
    return app


async def _redis_down(_: Request, err: Exception) -> Response:
    log.warning("redis unreachable", extra={"error": type(err).__name__})
    return error(503, "redis unreachable", headers={"Retry-After": "5"})


async def _store_down(_: Request, err: Exception) -> Response:
    log.warning("artifact store unreachable", extra={"error": str(err)})
    return error(503, "artifact store unreachable", headers={"Retry-After": "5"})
