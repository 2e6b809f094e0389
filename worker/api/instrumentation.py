"""Request metrics of the job API: an ASGI middleware that counts every answer by route template.

The ``route`` label is the template (``/api/preview/job/{job_id}/status``), found by
matching the request against the app's routes before it runs, never the raw path, so
job IDs and probing scanners cannot grow the label set; a request no route matches
is counted as ``constants.ROUTE_UNMATCHED``. :class:`DepthSampler` adds the queue's depth
to each scrape, read from Redis at a bounded rate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker import constants as c
from worker.metrics import ApiMetrics
from worker.queue.queues import REDIS_DOWN


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The path template of the route that answers ``scope`` (also on a 405), else ``ROUTE_UNMATCHED``."""
    for route in routes:
        match, _ = route.matches(scope)
        if match != Match.NONE and isinstance(route, Route):
            return route.path
    return c.ROUTE_UNMATCHED


class RequestMetrics:
    """ASGI middleware: one ``preview_api_requests_total`` increment per HTTP request."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics, routes: Sequence[BaseRoute]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_template(self.routes, scope)
        status = 500  # what the server answers when the app raises before starting a response

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.request(route, scope["method"], status)


class DepthSampler:
    """Reads the queue's counts into the depth gauges when ``/metrics`` is scraped.

    At most one read per ``min_interval`` seconds and one at a time, whoever asks and however
    often, so scraping (or a client hammering ``/metrics``) costs Redis a bounded load; a read
    that fails or takes over ``timeout`` seconds drops the series instead of leaving a stale one.
    """

    def __init__(
        self,
        metrics: ApiMetrics,
        counts: Callable[[], Awaitable[dict[str, int]]],
        min_interval: float = 1.0,
        timeout: float = 2.0,
    ) -> None:
        self.metrics, self.counts, self.min_interval, self.timeout = metrics, counts, min_interval, timeout
        self._lock = asyncio.Lock()
        self._read_at = -math.inf

    async def refresh(self) -> None:
        """Refresh the gauges unless they were read less than ``min_interval`` ago."""
        async with self._lock:
            if time.monotonic() - self._read_at < self.min_interval:
                return
            self._read_at = time.monotonic()
            try:
                counts = await asyncio.wait_for(self.counts(), self.timeout)
            except (TimeoutError, *REDIS_DOWN):
                self.metrics.clear_depth()
                return
            self.metrics.set_depth(counts)


def endpoint(metrics: ApiMetrics, sampler: DepthSampler | None = None) -> Route:
    """``GET /metrics``: the API's registry in the Prometheus text format (depth refreshed first)."""

    async def serve(_: Request) -> Response:
        if sampler is not None:
            await sampler.refresh()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Route(c.METRICS_PATH, serve, methods=["GET"])
