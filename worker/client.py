"""``PreviewClient``: the recommended way to enqueue preview jobs, check them and wait for them.

The job API enqueues through it, and any Python service can import it::

    async with PreviewClient.connect("redis://redis:6379/0") as client:
        job = await client.enqueue({"jobId": "upload-42", "source": {...}, "outputs": [...]})
        done = await client.wait(job.job_id, timeout=60)

* ``enqueue`` validates the payload against ``schemas/preview-job.schema.json`` (and the
  checks a schema cannot express) before anything reaches Redis, listing every violation;
  a ``jobId`` makes it idempotent: the same id again returns the existing job and its state;
  attempts and exponential backoff are the worker's (``PREVIEW_JOB_ATTEMPTS``,
  ``PREVIEW_BACKOFF_MS``); a queue holding ``PREVIEW_QUEUE_MAX`` waiting jobs refuses more.
* ``status`` is the API's status document plus the job's result; ``wait`` polls it until the
  job completes or fails, or the timeout passes.

Options not given to :meth:`PreviewClient.connect` come from the same ``PREVIEW_*`` variables
the worker reads, else the worker's own defaults (:class:`worker.settings.Settings`), so a
producer and the worker it feeds agree by construction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from worker.contract import jobid, validation
from worker.errors import PreviewError
from worker.queue import queues
from worker.settings import Settings

#: Job states after which nothing more happens to a job.
FINAL_STATES = frozenset({"completed", "failed"})
T = TypeVar("T")


class Checks:
    """Runs the contract's checks (parse, validate) in a thread, ``at_once`` at a time.

    The largest job (a 16 MiB inline source) takes a few hundred milliseconds of regular
    expressions and JSON decoding. In a thread the event loop gets the GIL back between those
    calls (and at least every ``sys.getswitchinterval()`` in Python code), so it keeps answering
    health and other requests meanwhile. One at a time: the GIL runs one anyway, and a queue of
    waiting checks holds only bodies the API's body budget already admitted.
    """

    def __init__(self, at_once: int = 1) -> None:
        self._slots = asyncio.Semaphore(at_once)

    async def run(self, check: Callable[..., T], *args: Any) -> T:
        """``check(*args)`` in a thread; its slot is freed when the thread ends, even if the caller
        is cancelled first (so the bound holds)."""
        await self._slots.acquire()
        future = asyncio.get_running_loop().run_in_executor(None, check, *args)
        future.add_done_callback(self._done)
        return await asyncio.shield(future)

    def _done(self, future: asyncio.Future[Any]) -> None:
        self._slots.release()
        if not future.cancelled():
            future.exception()  # retrieved: a caller that was cancelled no longer will


class QueueFullError(PreviewError):
    """The queue already holds ``PREVIEW_QUEUE_MAX`` unfinished jobs; retry later (the API's 429)."""

    def __init__(self, unfinished: int, limit: int) -> None:
        self.unfinished, self.limit = unfinished, limit
        super().__init__(
            f"queue full: {unfinished} jobs not finished (waiting, delayed or active; max {limit})"
        )


@dataclass(frozen=True)
class Enqueued:
    """What :meth:`PreviewClient.enqueue` did: the job id, whether it is new, and its state."""

    job_id: str
    created: bool
    state: str


class PreviewClient:
    """Enqueue, inspect and wait for preview jobs on one queue (one Redis client)."""

    def __init__(self, settings: Settings, patient: bool = False) -> None:
        self.settings = settings
        self.checks = Checks()
        self.queues = queues.Queues(settings, queues.redis_client(settings.redis_url, patient=patient))

    @classmethod
    def connect(cls, redis_url: str | None = None, *, patient: bool = False, **options: Any) -> PreviewClient:
        """A client for ``redis_url`` (default ``PREVIEW_REDIS_URL``); ``options`` are Settings fields.

        ``patient`` rides out a Redis restart instead of failing fast.
        """
        values = {**options, **({"redis_url": redis_url} if redis_url is not None else {})}
        return cls(Settings(**values), patient=patient)

    async def __aenter__(self) -> PreviewClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the Redis client."""
        await self.queues.close()

    async def enqueue(self, payload: Any) -> Enqueued:
        """Validate and add one job (see the module doc).

        Raises :class:`~worker.errors.InvalidJobError` (every violation) or :class:`QueueFullError`;
        Redis errors (``worker.queue.queues.REDIS_DOWN``) pass through. Nothing is written when it raises.
        """
        on = self.settings.path_sources == "on"
        job = await self.checks.run(validation.validate, payload, self.settings.inline_bytes, on)
        job_id = job.get("jobId")
        if job_id and (state := await self.queues.state(job_id)) != "unknown":
            return Enqueued(str(job_id), False, state)
        unfinished = await self.queues.unfinished()
        if unfinished >= self.settings.queue_max:
            raise QueueFullError(unfinished, self.settings.queue_max)
        new_id = await self.queues.add(job)  # its id was looked for above
        # Its state now (a worker may already hold it), read without fetching the job's data back.
        return Enqueued(new_id, True, await self.queues.state(new_id))

    async def status(self, job_id: str) -> dict[str, Any] | None:
        """The job's status document (as ``GET …/job/{id}/status``) plus ``result``; None if unknown.

        Every id goes through :func:`worker.contract.jobid.safe` (in ``Queues.state``/``get``):
        ``meta``, ``events`` or ``<job>:lock`` name the queue's own keys, never a job, and are unknown.
        """
        found = await self.queues.with_state(job_id)
        if found is None:
            return None
        job, state = found
        return {**queues.status(job, state), "result": job.returnvalue}

    async def wait(self, job_id: str, timeout: float, poll: float = 0.2) -> dict[str, Any]:
        """Poll :meth:`status` until the job completes or fails; raise TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.status(job_id)
            if found is None:
                raise KeyError(f"unknown job {jobid.shown(job_id)}")
            if found["state"] in FINAL_STATES:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id!r} is still {found['state']} after {timeout:g}s")
            await asyncio.sleep(poll)
