"""Process lifecycle for ``python -m worker run``, after uvicorn's.

SIGTERM or SIGINT stops fetching new jobs, drains the jobs in flight for up to
``PREVIEW_DRAIN_SECONDS`` and exits 0. Jobs still running after the grace
period keep their BullMQ lock until it expires and are then recovered by
another worker's stalled-job check.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from worker import logs
from worker.consumer import Consumer
from worker.metrics import Metrics
from worker.process.health import HealthServer
from worker.queue import queues
from worker.settings import Settings

log = logs.get("lifecycle")


async def run_worker(settings: Settings) -> int:
    """Run the consumer and its health server until a stop signal; returns the exit status."""
    metrics = Metrics(settings.track, queue=settings.queue_name)
    ready_client = queues.redis_client(settings.redis_url)

    consumer = Consumer(settings, metrics)

    async def ready() -> bool:
        # Redis answers and the consumer can fetch from it (a reachable Redis whose queue keys
        # are unusable is not ready either).
        metrics.set_fetching(consumer.fetching)
        try:
            return bool(await ready_client.ping()) and consumer.fetching
        except queues.REDIS_DOWN:
            return False

    health = HealthServer(metrics, ready, "0.0.0.0", settings.metrics_port)
    port = await health.start()
    consumer.start()
    log.info("worker ready", extra={"metricsPort": port, "track": settings.track, "pid": os.getpid()})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop)
    await stop.wait()

    started = time.monotonic()
    drained = await consumer.stop(settings.drain_seconds)
    log.info(
        "worker stopped",
        extra={"drained": drained, "drainSeconds": round(time.monotonic() - started, 3)},
    )
    await health.close()
    await ready_client.aclose()
    return 0


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    log.info("stop signal received, draining", extra={"signal": sig.name})
    stop.set()
