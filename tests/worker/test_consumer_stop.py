"""Stopping a consumer ends its housekeeping, even with a round's Redis call in flight, against a
real redis-server.

Seen before the fix: a worker stopped right after it started logged ``housekeeping step failed``
(``ConnectionError: Connection closed by server.``, redis-py's error for the call the stop cut
off), counted it, slept and went on, so the process never exited after ``worker stopped``.
"""

from __future__ import annotations

import asyncio

from redis.exceptions import ConnectionError

from worker import constants as c
from worker.consumer import Consumer
from worker.metrics import Metrics
from worker.settings import Settings


def errors(metrics: Metrics, step: str) -> float | None:
    labels = {c.LABEL_TRACK: metrics.track, c.LABEL_RELEASE: metrics.release, "step": step}
    return metrics.registry.get_sample_value(c.METRIC_HOUSEKEEPING_ERRORS, labels)


async def test_stop_ends_a_round_whose_call_turned_the_cancel_into_a_connection_error(
    settings: Settings,
) -> None:
    """The trim step stands in for what redis-py did with the stop's cancellation (the traceback
    seen: the round's call ended by ``Connection closed by server.``): the race between the stop
    and a call in flight cannot be timed from a test, so its outcome is reproduced."""
    metrics = Metrics(settings.track, queue=settings.queue_name)
    cons = Consumer(settings, metrics)
    trimming = asyncio.Event()

    async def trim_dlq(*_: object) -> int:
        trimming.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ConnectionError("Connection closed by server.") from None
        return 0

    cons.monitor.trim_dlq = trim_dlq  # type: ignore[method-assign]
    cons.start()
    await asyncio.wait_for(trimming.wait(), 20)
    await asyncio.wait_for(cons.stop(grace=1), 20)
    assert cons._housekeeping is not None and cons._housekeeping.cancelled()
    assert not errors(metrics, "trim")  # the stop is not a failed step
