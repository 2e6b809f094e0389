"""The run sequence of a consumer process, after uvicorn's: start, wait for a stop signal, drain, log.

The same sequence runs ``python -m worker run`` on its own (with its ``/healthz``, ``/readyz``
and ``/metrics`` server) and each child of the per-core supervisor (no HTTP port: the
supervisor serves the pod's). The first SIGTERM or SIGINT stops fetching new jobs and drains
the jobs in flight for up to ``PREVIEW_DRAIN_SECONDS``, then the process exits 0; a second one
kills the render processes and exits at once (see :mod:`worker.process.signals`). Jobs still
running at the end keep their BullMQ lock until it expires and are then recovered by another
worker's stalled-job check.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

from worker import logs
from worker.consumer import Consumer
from worker.metrics import Metrics
from worker.process.health import HealthServer
from worker.process.signals import StopSignals
from worker.queue import queues
from worker.settings import Settings

log = logs.get("lifecycle")
#: How often the fetching gauge is refreshed (the supervisor's ``/readyz`` reads it from every child).
FETCHING_REPORT_SECONDS = 0.5


async def run_consumer(settings: Settings, *, serve_health: bool) -> int:
    """Run a consumer until the first stop signal, drain it and return 0.

    With ``serve_health`` the process serves its health and metrics on ``PREVIEW_METRICS_PORT``;
    without it (a supervised child) its metrics go to the supervisor's multiprocess directory.
    """
    metrics = Metrics(settings.track, queue=settings.queue_name, release=settings.release)
    metrics.set_concurrency(settings.concurrency)
    consumer = Consumer(settings, metrics)
    stop = StopSignals(on_force=lambda: _kill(consumer.renders.pids())).install()
    async with contextlib.AsyncExitStack() as cleanup:
        ready: dict[str, Any] = {"pid": os.getpid()}
        if serve_health:
            ready |= await _serve_health(settings, metrics, consumer, cleanup)
        else:
            ready["supervised"] = True
        consumer.start()
        log.info("worker ready", extra=ready)
        while not await stop.wait(FETCHING_REPORT_SECONDS):
            metrics.set_fetching(consumer.fetching)
        started = time.monotonic()
        drained = await consumer.stop(settings.drain_seconds)
        log.info(
            "worker stopped",
            extra={"drained": drained, "drainSeconds": round(time.monotonic() - started, 3)},
        )
    return 0


async def _serve_health(
    settings: Settings, metrics: Metrics, consumer: Consumer, cleanup: contextlib.AsyncExitStack
) -> dict[str, Any]:
    """Start the process's health server (closed by ``cleanup``); the fields of its ready log line."""
    ready_client = queues.redis_client(settings.redis_url)
    cleanup.push_async_callback(ready_client.aclose)

    async def ready() -> bool:
        # Redis answers and the consumer can fetch from it (a reachable Redis whose queue keys
        # are unusable is not ready either).
        metrics.set_fetching(consumer.fetching)
        try:
            return bool(await ready_client.ping()) and consumer.fetching
        except queues.REDIS_DOWN:
            return False

    health = HealthServer(metrics, ready, settings.metrics_host, settings.metrics_port)
    port = await health.start()
    cleanup.push_async_callback(health.close)
    return {"metricsHost": settings.metrics_host, "metricsPort": port, "track": settings.track}


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
