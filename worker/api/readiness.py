"""The job API's view of Redis for its health route: checked in the background, answered from memory.

Health used to ask Redis on every request, so its answer took as long as Redis: behind a
near-cap job's write (a 15 MiB ``HSET``, 40 to 130 ms on a local Redis, longer with
``appendfsync always``) a ``PING`` on another connection waited up to 122 ms. :class:`RedisWatch`
asks instead, every quarter of ``PREVIEW_API_HEALTH_MAX_AGE_SECONDS``: a ``PING`` and the queue's
counts, each check bounded by that age. The route then answers at once from the newest answer
(:meth:`RedisWatch.seen`): healthy while the last successful check is at most that old and no
check failed since; else unhealthy, naming the failure (``TimeoutError`` when Redis has not
answered within the age: stopped, partitioned, or slower than that). A dead or frozen Redis
still turns health red, at most that age after its last answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from worker import logs, tasks

log = logs.get("api")
#: What a check that Redis has not answered within the age is reported as.
NO_ANSWER = TimeoutError.__name__


@dataclass(frozen=True)
class Seen:
    """What the health route answers from: the queue's counts if Redis is healthy, else why not."""

    counts: dict[str, int] | None  # set only when healthy: the newest check succeeded, within the age
    error: str | None
    age: float | None  # seconds since Redis last answered a check; None: never yet


class RedisWatch:
    """Checks Redis every ``max_age / 4`` seconds, each check bounded by ``max_age``."""

    def __init__(self, check: Callable[[], Awaitable[dict[str, int]]], max_age: float) -> None:
        self.check, self.max_age = check, max_age
        self.interval = max_age / 4
        self._counts: dict[str, int] | None = None
        self._answered_at: float | None = None  # monotonic time of the last successful check
        self._error: str | None = NO_ANSWER
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check once (so the first health answer has one; at most ``max_age``), then keep checking."""
        await self._check_once()
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def seen(self) -> Seen:
        """The newest answer, judged now (no I/O)."""
        age = None if self._answered_at is None else time.monotonic() - self._answered_at
        if self._error is not None:
            return Seen(None, self._error, age)
        if age is None or age > self.max_age:  # the check in flight has not answered within the age
            return Seen(None, NO_ANSWER, age)
        return Seen(self._counts, None, age)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._check_once()
            tasks.checkpoint()

    async def _check_once(self) -> None:
        try:
            counts = await asyncio.wait_for(self.check(), self.max_age)
        except Exception as err:  # unreachable, too slow, or any other refusal (LOADING, NOAUTH, …)
            tasks.reraise_cancel(err)  # close() asked, and the client or wait_for made an error of it
            if self._error is None:
                log.warning("redis check failed", extra={"error": type(err).__name__})
            self._error = type(err).__name__
            return
        if self._error is not None and self._answered_at is not None:
            log.info("redis reachable again")
        self._counts, self._answered_at, self._error = counts, time.monotonic(), None
