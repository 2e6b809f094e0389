"""The job API: one small Starlette app (served by uvicorn via ``python -m worker api``).

Routes (declared in :mod:`worker.api.openapi`, which describes them): enqueue, status, artifact
manifest, rendition bytes, queue metrics, health, the OpenAPI description and Prometheus
``/metrics`` (request counts by route template, enqueue latency; see
:mod:`worker.api.instrumentation`). Redis errors and an unreachable artifact
store become 503; invalid jobs 400 with every violation and its JSON path; a full
queue 429. Request bodies are bounded one by one, in total and in shape
(:mod:`worker.api.bodies`), connections and their deadlines by the server
(:mod:`worker.api.server`). The handlers are in :mod:`worker.api.handlers`. Artifacts come from
the configured store: the ``filesystem`` store's bytes are served here, the
``s3`` store's through presigned, expiring URLs.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mobius_preview_client.client import AsyncPreviewClient
from worker import constants as c
from worker import logs, store
from worker.api.auth import Policy, parse_tokens
from worker.api.bodies import BodyBudget
from worker.api.checking import Checker
from worker.api.handlers import ApiState, error
from worker.api.instrumentation import DepthSampler, RequestMetrics, endpoint
from worker.api.openapi import OPERATIONS
from worker.api.readiness import RedisWatch
from worker.errors import PreviewError
from worker.metrics import ApiMetrics
from worker.queue.queues import REDIS_DOWN, Queues, redis_client
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
    queues = Queues(settings, redis_client(settings.redis_url))
    # Enqueue goes through the client producers install, on the same Redis client.
    config = settings.client_config()
    client = AsyncPreviewClient.from_config(config, redis=queues.client)
    metrics = ApiMetrics(settings.track, queue=settings.queue_name, release=settings.release)
    budget = BodyBudget(settings.api_bodies_bytes)
    checker = Checker(config.max_inline_bytes or None, config.path_sources)
    watch = RedisWatch(functools.partial(_checked, queues), settings.api_health_max_age_seconds)
    artifacts = store.from_settings(settings)
    api = ApiState(settings, policy, client, queues, artifacts, metrics, budget, checker, watch)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await watch.start()
        try:
            yield
        finally:
            await watch.close()
            checker.close()
            await api.queues.close()

    routes = [
        Route(op.path, op.handler, methods=[op.method], name=op.name) for op in OPERATIONS if op.handler
    ]
    routes.append(endpoint(metrics, DepthSampler(metrics, api.queues.counts)))
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


async def _checked(queues: Queues) -> dict[str, int]:
    """What health reports of Redis: it answers a ``PING``, and the queue's counts."""
    await queues.ping()
    return await queues.counts()


async def _redis_down(_: Request, err: Exception) -> Response:
    log.warning("redis unreachable", extra={"error": type(err).__name__})
    return error(503, "redis unreachable", headers={"Retry-After": "5"})


async def _store_down(_: Request, err: Exception) -> Response:
    log.warning("artifact store unreachable", extra={"error": str(err)})
    return error(503, "artifact store unreachable", headers={"Retry-After": "5"})
