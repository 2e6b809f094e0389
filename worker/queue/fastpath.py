"""A faster ``bullmq.Worker``: the same Lua scripts and wire format, fewer round trips.

``bullmq`` 3.4.4 used plainly is about four times slower per process than Node.js
BullMQ 6.7 on no-op jobs (issue 7). :class:`FastWorker` keeps every Redis-side
behaviour (the Lua scripts are Node.js BullMQ 6.7's own, so Node producers and
workers interoperate unchanged) and changes only the client side:

* **fetch next in the completion call**: a completed job is moved to ``completed``
  by ``moveToFinished`` with ``fetchNext`` set, as Node.js does, so each job costs one
  Lua call instead of two; the next job is processed in the same task and keeps the
  same lock token (the script locks it with that token);
* **one auto-pipelined connection** (:mod:`worker.queue.pipe`) for ``moveToFinished``
  and ``moveToActive``, the calls on every job's path: all slots share one socket, as
  ioredis does for Node.js, instead of paying redis-py's per-call pool, timeout and
  retry bookkeeping; any failure of that socket falls back to the pooled client below;
* **a pooled Redis client** for the other non-blocking commands instead of bullmq's
  ``single_connection_client=True``, whose per-request lock serialises all
  concurrent jobs' commands on one socket (``decode_responses=True`` kept: the
  job parsing in bullmq expects ``str``);
* **a queue of finished tasks**: the main loop wakes on a done-callback instead of
  re-``asyncio.wait``-ing on every running task on each pass (O(1), not O(concurrency));
* **commands packed by hiredis** (C) instead of redis-py's pure-Python ``pack_command``,
  which the profile shows as the largest remaining cost (a ``moveToFinished`` call has
  22 arguments); redis-py does this for its sync client, not its asyncio one;
* **every job read through the one JSON gate** (:mod:`mobius_preview_client.intake`): a job whose data or
  options a raw producer wrote as something the API would refuse comes back marked as poison, to
  be failed and dead-lettered, instead of failing the fetch and stalling for ever;
* **the completion call's arguments built once per queue**: bullmq's ``moveToFinishedArgs``
  rebuilds eleven queue keys and two closures on every job (6.0 µs; 3.7 µs here, #34);
  :meth:`FastWorker._completed_args` keeps the keys and sends the same arguments, byte for byte
  (``tests/worker/queue/test_fastpath.py``);
* **Redis version detection** at start, so bullmq knows the server takes sub-second
  ``BZPOPMIN`` timeouts and delayed jobs / backoff retries start on time instead of
  up to a second late.

Failures, retries, stalled-job checks, lock renewal, pause and close are bullmq's own
code paths, untouched.

Over 300 lines on purpose: :class:`FastWorker` overrides bullmq's main loop and job path as
one unit, to be read against bullmq's ``Worker``; split, its halves would each need the other.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import hiredis
import msgpack
import redis.asyncio as aioredis
from bullmq import Job, Worker
from bullmq.custom_errors import DelayedError, UnrecoverableError, WaitingChildrenError
from bullmq.redis_connection import RedisConnection
from bullmq.scripts import Scripts, raw2NextJobData
from bullmq.timer import Timer
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, DataError, NoScriptError, TimeoutError

from mobius_preview_client import connections, intake
from worker import logs
from worker.queue.pipe import PipelinedConnection, PipelinedScript, UnsupportedUrl

log = logs.get("fastpath")
POOL_SOCKET_TIMEOUT_SECONDS = 30.0
# Longer than any BZPOPMIN bullmq sends (its maximumBlockTimeout is 10 s), so a read times
# out only when the server is really gone.
BLOCKING_SOCKET_TIMEOUT_SECONDS = 15.0
# The Lua calls on every job's path (complete + fetch next, or fail; take a job when a slot is
# empty): they go over the pipelined connection.
PIPELINED_SCRIPTS = ("moveToFinished", "moveToActive")
#: The queue keys ``moveToFinished`` takes before the target set, in bullmq's order.
FINISH_KEYS = (
    "wait",
    "active",
    "prioritized",
    "events",
    "stalled",
    "limiter",
    "delayed",
    "paused",
    "meta",
    "pc",
)
#: ``json.dumps(value, separators=(",", ":"), allow_nan=False)``, its encoder made once.
_RESULT_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
#: ``msgpack.packb(value, use_bin_type=True)``, its packer made once (``packb`` makes one per call).
_PACK = msgpack.Packer(use_bin_type=True).pack


class _HiredisPacking:
    """Connection mixin: pack commands with ``hiredis.pack_command`` (as redis-py's sync client does)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):
            args = tuple(args[0].encode().split()) + args[1:]
        elif b" " in args[0]:
            args = tuple(args[0].split()) + args[1:]
        args = tuple(bytes(a) if isinstance(a, (bytearray, memoryview)) else a for a in args)
        try:
            return [hiredis.pack_command(args)]
        except TypeError as err:
            raise DataError(str(err)) from err


def reconnect_retry() -> Retry:
    """How the worker's connections ride out an outage: about five minutes of retries, as bullmq's
    own policy (20 tries, doubling from 1 s to 20 s), but starting at 0.1 s and never waiting more
    than 2 s, so a failover's promoted master is found within 2 s of its promotion."""
    return Retry(ExponentialBackoff(cap=2, base=0.1), 150)


def hiredis_packing(client: aioredis.Redis) -> aioredis.Redis:
    """Make ``client``'s pool create connections that pack commands with hiredis; returns it."""
    pool = client.connection_pool
    base = pool.connection_class
    if not issubclass(base, _HiredisPacking):
        pool.connection_class = type(f"HiredisPacking{base.__name__}", (_HiredisPacking, base), {})
    return client


def pooled_client(url: str, max_connections: int, *, hiredis_pack: bool = True) -> aioredis.Redis:
    """A pooled client with bullmq's own retry policy and ``decode_responses=True``."""
    client = connections.client(
        url,
        decode_responses=True,
        retry=reconnect_retry(),
        retry_on_error=[BusyLoadingError, ConnectionError, TimeoutError],
        max_connections=max_connections,
        # Only short Lua calls use this pool (BZPOPMIN has its own connection): a reply that never
        # comes becomes a retried TimeoutError instead of a slot stuck for ever.
        socket_timeout=POOL_SOCKET_TIMEOUT_SECONDS,
    )
    return hiredis_packing(client) if hiredis_pack else client


def single_client(url: str) -> aioredis.Redis:
    """One connection, as bullmq builds from a plain URL, with :func:`reconnect_retry`."""
    return connections.client(
        url,
        decode_responses=True,
        single_connection_client=True,
        retry=reconnect_retry(),
        retry_on_error=[BusyLoadingError, ConnectionError, TimeoutError],
    )


class FastWorker(Worker):  # type: ignore[misc]  # bullmq ships no type information
    """``bullmq.Worker`` with the fast path described in the module docstring.

    ``opts`` are bullmq's worker options; ``opts["connection"]`` must be a URL.
    ``fetch_next``, ``pooled``, ``hiredis_pack`` and ``pipelined`` exist so the benchmark can
    measure each lever alone.
    """

    running: bool

    def __init__(
        self,
        name: str,
        processor: Any,
        opts: dict[str, Any],
        *,
        fetch_next: bool = True,
        pooled: bool = True,
        hiredis_pack: bool = True,
        pipelined: bool = True,
        max_data_bytes: int | None = None,
    ) -> None:
        #: The JSON gate's size bound for a job's data (mobius_preview_client.intake); None: unbounded.
        self.max_data_bytes = max_data_bytes
        autorun = opts.get("autorun", True)
        url = opts["connection"]
        sentinel = connections.parse_sentinel(url) is not None
        base = {**opts, "autorun": False}
        if sentinel:  # bullmq makes its connections with redis.from_url, which knows no Sentinel
            base["connection"] = single_client(url)
        super().__init__(name, processor, base)
        self.opts["autorun"] = autorun
        self.opts["connection"] = url
        if sentinel:  # bullmq used the one client for both; BZPOPMIN needs its own connection
            self.backend.blocking_connection = RedisConnection(single_client(url))
            self.blockingRedisConnection = self.backend.blocking_connection
        self.fetch_next = fetch_next
        if pooled:
            # Replace the single-connection main client (never used yet) by a pool; the
            # dedicated blocking connection for BZPOPMIN stays as it is.
            backend = self.backend
            old = backend.connection
            client = pooled_client(
                opts["connection"], int(opts.get("concurrency", 1)) + 8, hiredis_pack=hiredis_pack
            )
            conn = RedisConnection(client)
            backend.connection = conn
            backend.scripts = Scripts(backend.prefix, name, conn)
            self.redisConnection = conn
            self.client = conn.conn
            self.scripts = backend.scripts
            self._discarded = old
        else:
            self._discarded = None
            if hiredis_pack:
                hiredis_packing(self.backend.connection.conn)
        if self.backend.blocking_connection is not None:
            blocking = self.backend.blocking_connection.conn
            # redis-py 8 reads with a 5 s socket timeout by default, the same as bullmq's 5 s
            # drainDelay: an idle BZPOPMIN raced its own read timeout, reconnecting about every
            # other wait, and on Python 3.11 a close() landing in that race had its cancel
            # turned into a retried TimeoutError, so close() hung (issue 7's rare close hang).
            blocking.connection_pool.connection_kwargs["socket_timeout"] = BLOCKING_SOCKET_TIMEOUT_SECONDS
            if hiredis_pack:
                hiredis_packing(blocking)
        self._pipe: PipelinedConnection | None = None
        if pipelined:
            try:
                self._pipe = PipelinedConnection(opts["connection"])
            except UnsupportedUrl as err:
                log.info("job calls stay on the pooled client", extra={"reason": str(err)})
            else:
                commands = self.scripts.commands
                for script in PIPELINED_SCRIPTS:
                    commands[script] = PipelinedScript(commands[script], self._pipe)
        # When the last fetch succeeded and failed (monotonic): readiness is red while the newest
        # attempt failed, e.g. a queue key of the wrong type answering WRONGTYPE to every fetch.
        self.fetch_ok_at = 0.0
        self.fetch_failed_at = 0.0
        self._completed_keys: tuple[Any, list[str], str] | None = None  # (scripts, keys, metrics key)
        self._runner: asyncio.Future[None] | None = None
        self._finished: asyncio.Queue[asyncio.Future[Any] | None] = asyncio.Queue()
        if processor and autorun:
            self._start_runner()

    def _start_runner(self) -> None:
        self._runner = asyncio.ensure_future(self.run())
        self._runner.add_done_callback(self._runner_done)

    def _runner_done(self, runner: asyncio.Future[None]) -> None:
        """The fetch loop ended: expected when closing; otherwise it died, and is started again.

        Until it fetches again readiness is red (``fetching``), so a loop that keeps dying shows.
        """
        if runner.cancelled() or self.closing or self.closed or runner.exception() is None:
            return
        err = runner.exception()
        self.fetch_failed_at = time.monotonic()
        log.error("the fetch loop died; starting it again", extra={"error": f"{type(err).__name__}: {err}"})
        delay = self.opts.get("runRetryDelay", 1000) / 1000
        asyncio.get_running_loop().call_later(delay, lambda: None if self.closing else self._start_runner())

    async def close(self, force: bool = False) -> None:
        """bullmq's close (waits for running jobs unless ``force``), then the pipelined socket."""
        try:
            await super().close(force)
        finally:
            if self._pipe is not None:
                await self._pipe.close()

    async def _detect_version(self) -> None:
        # bullmq never asks on its own, so it assumes an old server: whole-second blocks.
        for conn in (self.backend.connection, self.backend.blocking_connection):
            if conn is None:
                continue
            try:
                await conn.getRedisVersion()
            except Exception as err:  # the fetch loop retries; keep the safe defaults
                log.warning("redis version detection failed", extra={"error": f"{type(err).__name__}: {err}"})

    async def run(self) -> None:
        """The fetch loop: one task per slot, woken through a queue of finished tasks."""
        if self.running:
            raise Exception("Worker is already running")
        if self._discarded is not None:
            await self._discarded.close()
            self._discarded = None
        await self._ensure_client_names()
        await self._detect_version()
        self.lockManager.start()
        self.stalledCheckTimer = Timer(
            self.opts["stalledInterval"] / 1000, self.runStalledJobsCheck, self.emit
        )
        self.running = True
        # Finished slot tasks, or None: "a slot took a job, start another fetcher if there is room".
        finished: asyncio.Queue[asyncio.Future[Any] | None] = asyncio.Queue()
        self._finished = finished
        token_postfix = 0
        concurrency = self.opts["concurrency"]
        try:
            while not self.closed:
                if self.paused and not self.closing:
                    await self.resume_event.wait()
                    continue
                while (
                    not self.waiting
                    and len(self.processing) < concurrency
                    and not self.closing
                    and not self.paused
                ):
                    token_postfix += 1
                    task = asyncio.ensure_future(self._slot(f"{self.id}:{token_postfix}"))
                    task.add_done_callback(finished.put_nowait)
                    self.processing.add(task)
                if not self.processing:
                    if self.closing:
                        break
                    await asyncio.sleep(0)
                    continue
                done = await finished.get()
                if done is None:
                    continue
                self.processing.discard(done)
                if not done.cancelled() and done.exception() is not None:
                    self.emit("error", done.exception())
                if self.closing and not self.processing:
                    break
        finally:
            self.running = False
            if not self.closing:
                for task in self.processing:
                    task.cancel()
                if self.waiting and not self.waiting.done():
                    self.waiting.cancel()
                if self.processing:
                    await asyncio.gather(*self.processing, return_exceptions=True)
                self.processing.clear()
            self.stalledCheckTimer.stop()
            await self.lockManager.close()

    async def _slot(self, token: str) -> None:
        job = await self.retryIfFailed(
            lambda: self._fetch(token),
            {"delay_in_ms": self.opts.get("runRetryDelay"), "only_emit_error": True},
        )
        if job is not None:
            self._finished.put_nowait(None)
        while job is not None:
            job = await self._process(job, token)
            if job is not None:
                self.emit("active", job, "waiting")

    async def moveToActive(self, token: str) -> Job | None:
        """bullmq's, unless paused or closing: a blocking wait that returned just as ``pause()``
        cancelled it would otherwise take a job after the drain began (seen under load)."""
        if self.paused or self.closing:
            return None
        job: Job | None = await super().moveToActive(token)
        return job

    async def nextJobFromJobData(
        self,
        job_data: dict[str, Any] | None = None,
        job_id: str | None = None,
        limit_until: int = 0,
        delay_until: int = 0,
        token: str | None = None,
    ) -> Job | None:
        """bullmq's, with the job read through the one JSON gate (``intake.from_raw``):
        a job that fails it comes back with ``job.poison`` set instead of failing the fetch, which
        left it active until it stalled, again and again."""
        if not job_data:
            none: Job | None = await super().nextJobFromJobData(job_data, job_id, limit_until, delay_until)
            return none
        self.limitUntil = max(limit_until or 0, 0)
        if delay_until:
            self.blockUntil = max(int(delay_until), 0)
        self.drained = False
        found = intake.from_raw(self, job_data, job_id, self.max_data_bytes)
        found.token = token
        if found.repeatJobKey and found.poison is None:  # a job scheduler's: bullmq's own next step
            try:
                delay = {"delay_in_ms": self.opts.get("runRetryDelay")}
                await self.retryIfFailed(lambda: self._scheduleNextIteration(found), delay)
            except Exception as err:
                self.emit("error", RuntimeError(f"Failed to add repeatable job for next iteration: {err}"))
        return found

    async def _fetch(self, token: str) -> Job | None:
        try:
            job: Job | None = await self.getNextJob(token)
        except Exception:
            self.fetch_failed_at = time.monotonic()
            raise
        self.fetch_ok_at = time.monotonic()
        return job

    @property
    def fetching(self) -> bool:
        """False while the newest attempt to fetch a job failed."""
        return self.fetch_failed_at <= self.fetch_ok_at

    def _completed_args(
        self, job: Job, value: Any, keep: Any, token: str, fetch: bool
    ) -> tuple[list[str], list[Any]]:
        """``self.scripts.moveToCompletedArgs(job, value, keep, token, fetch)``: the same keys and
        arguments, the queue's keys made once."""
        scripts = self.scripts
        if self._completed_keys is None or self._completed_keys[0] is not scripts:
            base = scripts.getKeys([*FINISH_KEYS, "completed"])
            self._completed_keys = (scripts, base, scripts.toKey("metrics:completed"))
        _, base, metrics_key = self._completed_keys
        queue_key = scripts.keys[""]
        keys = [*base, f"{queue_key}{job.id}", metrics_key, scripts.keys["marker"]]
        if type(keep) is int:
            keep_jobs = {"count": keep}
        elif type(keep) is dict:
            keep_jobs = keep
        else:
            keep_jobs = {"count": 0} if keep else {"count": -1}
        metrics = self.opts.get("metrics")
        job_opts = job.opts
        packed = _PACK(
            {
                "token": token,
                "keepJobs": keep_jobs,
                "limiter": self.opts.get("limiter"),
                "lockDuration": self.opts.get("lockDuration"),
                "attempts": job.attempts,
                "attemptsMade": job.attemptsMade,
                "maxMetricsSize": "" if metrics is None else metrics.get("maxDataPoints", ""),
                "fpof": job_opts.get("failParentOnFailure", False),
                "cpof": job_opts.get("continueParentOnFailure", False),
                "idof": job_opts.get("ignoreDependencyOnFailure", False),
                "rdof": job_opts.get("removeDependencyOnFailure", False),
            }
        )
        stored = _RESULT_JSON(value) or ""
        args = [
            job.id,
            round(time.time() * 1000),
            "returnvalue",
            stored,
            "completed",
            "1" if fetch else "",
            queue_key,
            packed,
        ]
        return keys, args

    def _moved(self, job_id: str, result: Any) -> list[Any] | None:
        """``Scripts.moveToFinished``'s answer from the script's reply: the next job's data, or
        bullmq's error for a negative code (``Missing lock`` and the like)."""
        if result is None:
            return None
        if type(result) is int and result < 0:
            raise self.scripts.finishedErrors(
                {"code": result, "jobId": job_id, "command": "moveToFinished", "state": "active"}
            )
        moved: list[Any] | None = raw2NextJobData(result)
        return moved

    def emit(self, event_name: str, *args: Any, **kwargs: Any) -> None:
        """bullmq's ``EventEmitter.emit`` without its list when no one listens: ``completed`` and
        ``active`` are emitted for every job and the consumer listens to neither (#34)."""
        callbacks = self._callbacks.get(event_name)
        if callbacks:
            for callback in callbacks:
                callback(*args, **kwargs)

    async def _process(self, job: Job, token: str) -> Job | None:
        """bullmq's ``processJob``, completing with ``fetchNext``; returns the next job, if any.

        Ends with the event ``settled`` (job, token, recorded), or, when a next job came with the
        completion, schedules it for the next pass of the loop (the next job's completion call is
        then on its way to Redis): ``recorded`` is True once Redis took
        the attempt's finish (``moveToFinished`` completed or failed it), False when it refused it
        (``Missing lock`` after a stall or a Redis restart) or was never asked (forced close, or a
        job handed back with ``DelayedError``), so the consumer counts an outcome only once it holds.
        """
        next_job = None
        recorded = False
        try:
            for key in ("removeOnComplete", "removeOnFail"):
                if key not in job.opts and key in self.opts:
                    job.opts[key] = self.opts[key]
            self.jobs.add((job, token))
            self.lockManager.track_job(job.id, token, int(time.time() * 1000))
            if job.deferredFailure:
                await job.moveToFailed(UnrecoverableError(job.deferredFailure), token)
                self.emit("failed", job, UnrecoverableError(job.deferredFailure))
                return None
            result = await self.processor(job, token)
            if not self.forceClosing:
                fetch = self.fetch_next and not (self.closing or self.paused)
                keys, args = self._completed_args(
                    job, result, job.opts.get("removeOnComplete", False), token, fetch
                )
                script = self.scripts.commands["moveToFinished"]
                command = script.command(keys, args) if type(script) is PipelinedScript else None
                sent = None if command is None else script.pipe.sent(command)
                if sent is None:
                    moved = await self.scripts.moveToFinished(job.id, keys, args)
                else:  # Scripts.moveToFinished and the script's call, without their two coroutines
                    try:
                        raw = script.pipe.reply(await sent[0], sent[1])
                    except (NoScriptError, ConnectionError) as err:
                        raw = await script.recover(err, command, keys, args)
                    moved = self._moved(job.id, raw)
                recorded = True
                job.returnvalue = result
                job.attemptsMade = job.attemptsMade + 1
                if fetch:
                    data, job_id, limit_until, delay_until = moved or (None, None, 0, 0)
                    next_job = await self.nextJobFromJobData(
                        data, job_id, limit_until or 0, delay_until or 0, token
                    )
            self.emit("completed", job, result)
        except (DelayedError, WaitingChildrenError):
            return None
        except Exception as err:
            try:
                if not self.forceClosing:
                    await job.moveToFailed(err, token)
                    recorded = True
                self.emit("failed", job, err)
            except Exception as err2:
                self.emit("error", err2, job)
        finally:
            self.jobs.discard((job, token))
            self.lockManager.untrack_job(job.id)
            if next_job is None:
                self.emit("settled", job, token, recorded)
            else:
                # The next job's completion goes to Redis first; this one's bookkeeping (the log line,
                # the counters) runs while Redis works on it, off the round trip (#34, concurrency 1).
                asyncio.get_running_loop().call_soon(self.emit, "settled", job, token, recorded)
        return next_job
