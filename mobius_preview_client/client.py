"""``AsyncPreviewClient``: enqueue preview jobs, read their status and wait for them (asyncio).

    async with AsyncPreviewClient("redis://redis:6379/0", queue_name="preview-jobs") as client:
        job = await client.enqueue({"jobId": "upload-42", "source": {...}, "outputs": [...]})
        done = await client.wait(job.job_id, timeout=60)

* ``enqueue`` validates the payload against the job schema (and the checks a schema cannot
  express) before anything reaches Redis, listing every violation; a ``jobId`` makes it
  idempotent: the same id again returns the existing job and its state. Attempts and exponential
  backoff are the configured ones (the worker's defaults); a queue holding ``queue_max``
  unfinished jobs refuses more.
* ``status`` is the job API's status document plus the job's result; ``wait`` returns it once the
  job completed or failed, woken by BullMQ's event stream (:mod:`mobius_preview_client.events`).

Every option is an argument (:class:`~mobius_preview_client.config.ClientConfig`);
:meth:`AsyncPreviewClient.from_env` reads the worker's variables instead, when asked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import redis.asyncio as aioredis
from bullmq import Queue
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mobius_preview_client import connections, events, jobs
from mobius_preview_client import names as n
from mobius_preview_client.config import ClientConfig
from mobius_preview_client.contract import jobid, validation
from mobius_preview_client.errors import QueueFullError


def redis_client(url: str, patient: bool = False) -> aioredis.Redis:
    """A redis-py client: ``patient`` rides out a Redis restart; otherwise it fails fast (for HTTP)."""
    retry = Retry(ExponentialBackoff(cap=2, base=0.1), 30) if patient else Retry(NoBackoff(), 0)
    client: aioredis.Redis = connections.client(
        url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=None if patient else 5,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return client


T = TypeVar("T")


class Checks:
    """Runs the contract's checks (parse, validate, encode) in a thread, ``at_once`` at a time.

    The largest job (a 16 MiB inline source) takes a few hundred milliseconds of regular
    expressions and JSON decoding and encoding. In a thread the event loop gets the GIL back
    between those calls (and at least every ``sys.getswitchinterval()`` in Python code), but each
    single call over the inline string holds it for 15 to 50 ms: a loop that must answer faster
    meanwhile checks large jobs in a process instead (the job API does). One at a time: the GIL
    runs one anyway, and a queue of waiting checks holds only bodies the API's body budget admitted.
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


def _pre_encoded(queue: Queue) -> None:
    """Let ``queue.add`` take a :class:`~mobius_preview_client.contract.validation.Encoded` job:
    its JSON goes to Redis as it is, instead of BullMQ's ``json.dumps`` of the data on the event
    loop (tens of milliseconds for a 16 MiB inline source, the GIL held throughout)."""
    scripts = queue.backend.scripts  # RedisBackend (the only backend this client builds)
    plain = scripts.addJobArgs

    def job_args(job: Any) -> list[Any]:
        data = job.data
        if not isinstance(data, validation.Encoded):
            return list(plain(job))
        job.data = None  # BullMQ encodes "null"; the job's own JSON replaces it
        try:
            args = list(plain(job))
        finally:
            job.data = data
        args[1] = data.data
        return args

    scripts.addJobArgs = job_args


@dataclass(frozen=True)
class Enqueued:
    """What :meth:`AsyncPreviewClient.enqueue` did: the job id, whether it is new, and its state."""

    job_id: str
    created: bool
    state: str


class AsyncPreviewClient:
    """Enqueue, inspect and wait for preview jobs on one queue (one Redis client)."""

    def __init__(self, redis_url: str, **options: Any) -> None:
        """``options`` are :class:`ClientConfig`'s (``queue_name``, ``prefix``, ``queue_max``, …)."""
        self._setup(ClientConfig(redis_url, **options), None)

    @classmethod
    def from_config(cls, config: ClientConfig, redis: aioredis.Redis | None = None) -> AsyncPreviewClient:
        """A client for ``config``; on ``redis`` (a decoding client, which the caller closes) if given."""
        client = cls.__new__(cls)
        client._setup(config, redis)
        return client

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> AsyncPreviewClient:
        """A client configured from the worker's variables (:meth:`ClientConfig.from_env`)."""
        return cls.from_config(ClientConfig.from_env(environ, **overrides))

    def _setup(self, config: ClientConfig, redis: aioredis.Redis | None) -> None:
        self.config = config
        self.checks = Checks()
        self._owns_redis = redis is None
        self.redis = redis if redis is not None else redis_client(config.redis_url, config.patient)
        self.queue = Queue(config.queue_name, {"connection": self.redis, "prefix": config.prefix})
        _pre_encoded(self.queue)

    async def __aenter__(self) -> AsyncPreviewClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the Redis client (unless it was given to :meth:`from_config`)."""
        if self._owns_redis:
            await self.redis.aclose()

    async def enqueue(self, payload: Any) -> Enqueued:
        """Validate and add one job (see the module doc).

        Raises :class:`~mobius_preview_client.errors.InvalidJobError` (every violation) or
        :class:`~mobius_preview_client.errors.QueueFullError`; Redis errors pass through. Nothing is
        written when it raises.
        """
        cfg = self.config
        job = await self.checks.run(
            validation.prepare, payload, cfg.max_inline_bytes or None, cfg.path_sources
        )
        return await self.add(job)

    async def add(self, job: validation.Encoded) -> Enqueued:
        """Add a job :func:`~mobius_preview_client.contract.validation.prepare` returned (validated
        and encoded elsewhere, e.g. in another process): as :meth:`enqueue` past its checks."""
        cfg = self.config
        if job.job_id and (state := await jobs.state(self.queue, job.job_id)) != "unknown":
            return Enqueued(job.job_id, False, state)
        unfinished = await jobs.unfinished(self.queue)
        if unfinished >= cfg.queue_max:
            raise QueueFullError(unfinished, cfg.queue_max)
        opts = jobs.options(cfg.job_attempts, cfg.backoff_ms, job.job_id, job.priority)
        added = await self.queue.add(n.JOB_NAME, job, opts)  # its id was looked for above
        new_id = str(added.id)
        # Its state now (a worker may already hold it), read without fetching the job's data back.
        return Enqueued(new_id, True, await jobs.state(self.queue, new_id))

    async def status(self, job_id: str) -> dict[str, Any] | None:
        """The job's status document (as ``GET …/job/{id}/status``) plus ``result``; None if unknown.

        An id that is no job's (``meta``, ``events``, ``<job>:lock``) is unknown too.
        """
        found = await jobs.with_state(self.queue, job_id)
        if found is None:
            return None
        job, state = found
        return {**jobs.status(job, state), "result": job.returnvalue}

    async def wait(self, job_id: str, timeout: float) -> dict[str, Any]:
        """:meth:`status` once the job completed or failed; TimeoutError after ``timeout`` seconds,
        KeyError for an unknown job. Woken by the queue's event stream, not by polling."""
        deadline = time.monotonic() + timeout
        key = self.queue.toKey("events")
        since = await events.cursor(self.redis, key)  # before the status: no event can slip between
        while True:
            found = await self.status(job_id)
            if found is None:
                raise KeyError(f"unknown job {jobid.shown(job_id)}")
            if found["state"] in jobs.FINAL_STATES:
                return found
            left = deadline - time.monotonic()
            moved = await events.next_for(self.redis, key, job_id, since, left) if left > 0 else None
            if moved is None:
                raise TimeoutError(f"job {jobid.shown(job_id)} is still {found['state']} after {timeout:g}s")
            since = moved
