"""The BullMQ consumption layer: the only module that talks to ``bullmq.Worker``.

It maps pipeline outcomes onto BullMQ semantics: transient errors are retried
with backoff; permanent ones fail at once (``UnrecoverableError``); a job that
will not be retried is written to the DLQ *before* it is marked failed, so a
crash in between leaves a DLQ entry, never a lost job. Stalled jobs (a worker
SIGKILLed mid-job) come back through BullMQ's stalled-job check, and a
housekeeping loop dead-letters any failed job BullMQ failed on its own (for
instance after too many stalls) and refreshes the queue-depth gauges.

An attempt's outcome is counted and logged only once Redis recorded its finish (the event
``settled`` of :class:`~worker.queue.fastpath.FastWorker`): an attempt whose finish Redis refused
(its lock was lost to a stall or a Redis restart) is counted ``unrecorded`` and runs again, and a
rerun that finds the artifacts stored counts ``completed`` once, with ``reused`` beside it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bullmq import Job, UnrecoverableError
from bullmq.custom_errors import DelayedError

from mobius_preview_client import intake
from mobius_preview_client.contract.documents import JobResult
from worker import constants as c
from worker import errors, logs, pipeline, tasks
from worker.errors import InvalidJobError, PermanentJobError, RenderCancelled
from worker.metrics import Metrics, PassTally
from worker.queue import queues
from worker.queue.fastpath import FastWorker
from worker.settings import Settings

log = logs.get("consumer")
CLOSE_TIMEOUT_SECONDS = 10.0
#: After a drain's grace: how long the jobs whose renders were killed get to go back to the queue.
CANCEL_SECONDS = 2.0
#: How long stop() waits for a housekeeping round in flight to end before closing its clients.
HOUSEKEEPING_STOP_SECONDS = 5.0


@dataclass(slots=True)
class _Attempt:
    """What an attempt ended as, counted and logged once Redis records it (its ``duration`` is set
    when it ends: a frozen copy per job cost more than the rest of the bookkeeping, #34)."""

    outcome: str  # the job's outcome (logged as ``job <outcome>``)
    extra: tuple[str, ...] = ()  # outcomes counted besides it: dlq, invalid, reused
    reason: str | None = None
    cause: str = c.REASON_NONE  # the ``reason`` label: the class of error it ended with
    duration: float = 0.0  # the attempt's wall time, in seconds


class Consumer:
    """Runs a ``bullmq.Worker`` (:class:`~worker.queue.fastpath.FastWorker`) until :meth:`stop`."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        # DLQ writes ride out a Redis restart; housekeeping fails fast so an outage is logged.
        self.queues = queues.Queues(settings, queues.redis_client(settings.redis_url, patient=True))
        self.monitor = queues.Queues(settings, queues.redis_client(settings.redis_url))
        self.renders = pipeline.render_pool(settings)
        self.rules = pipeline.job_rules(settings)
        self.worker: FastWorker | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._warming: asyncio.Task[None] | None = None
        self._round_errors = 0
        #: Attempts ended but not yet recorded by Redis, by (job id, lock token).
        self._ending: dict[tuple[str, str], _Attempt] = {}
        #: The per-job counters and the in-flight gauge, added up over each loop pass (#34).
        self._tally = PassTally()

    @property
    def unsettled(self) -> int:
        """Attempts ended whose finish Redis has not acknowledged yet, plus counts not yet applied.

        Redis shows a job finished as soon as its completion script has run, a moment before this
        process reads the reply and counts the outcome at the end of that loop pass.
        """
        return len(self._ending) + len(self._tally)

    def start(self) -> None:
        """Start fetching jobs (must be called inside the running loop)."""
        s = self.settings
        opts: dict[str, Any] = {
            "connection": s.redis_url,
            "prefix": c.BULL_PREFIX,
            "concurrency": s.concurrency,
            "lockDuration": s.lock_ms,
            "stalledInterval": s.stalled_interval_ms,
            "maxStalledCount": s.max_stalled_count,
            "runRetryDelay": s.run_retry_delay_ms,
            "drainDelay": 5,
            # Finished jobs leave Redis by age or count, whichever comes first (a producer's own
            # removeOnComplete/removeOnFail on a job wins).
            "removeOnComplete": {"age": s.keep_completed_seconds, "count": s.keep_completed_count},
            "removeOnFail": {"age": s.keep_failed_seconds, "count": s.keep_failed_count},
        }
        self.worker = FastWorker(s.queue_name, self.process, opts, max_data_bytes=self.queues.max_data_bytes)
        self.worker.on("error", self._on_error)
        self.worker.on("settled", self._settled)
        self.worker.on("stalled", lambda job_id, *_: log.warning("job stalled", extra={"jobId": job_id}))
        self._housekeeping = asyncio.create_task(self._housekeep())
        self._warming = asyncio.create_task(self._warm_renders())
        log.info(
            "consumer started",
            extra={"queue": s.queue_name, "concurrency": s.concurrency, "redis": s.redacted_redis_url},
        )

    async def _warm_renders(self) -> None:
        try:
            await self.renders.warm()
        except Exception as err:  # not fatal: a render starts its own process when it needs one
            log.warning("render processes not started ahead", extra={"error": f"{type(err).__name__}: {err}"})

    async def stop(self, grace: float) -> bool:
        """Stop fetching, wait up to ``grace`` seconds for in-flight jobs; True if all drained."""
        # Ended before the clients its round uses are closed under it: a round cut off by a closed
        # connection lost its cancellation and kept the process from exiting (worker.tasks).
        if not await tasks.stop(self._housekeeping, HOUSEKEEPING_STOP_SECONDS):
            log.warning("housekeeping did not stop", extra={"timeout": HOUSEKEEPING_STOP_SECONDS})

        drained = True
        if self.worker is not None:
            # bullmq's close() waits on a snapshot of its task set and can close the connection
            # under a job fetched meanwhile, so pause first (no new fetches) and watch the live set.
            await self.worker.pause(do_not_wait_active=True)
            log.info("consumer paused, draining", extra={"inFlight": len(self.worker.jobs), "grace": grace})
            drained = await self._wait_idle(grace)
            # Renders still running are killed; their processors hand the jobs back to the queue
            # (RenderCancelled), which takes a moment, not another render's length.
            cancelled = await self.renders.close()
            settled = drained or (cancelled > 0 and await self._wait_idle(CANCEL_SECONDS))
            # Jobs still running keep their lock until it expires; another worker's stalled
            # check then puts them back, so force-closing loses nothing. close() is bounded: it
            # has been seen (rarely, in the benchmark) not to return after a drain, and bullmq's
            # close() shields itself from cancellation, so it is not awaited past the bound.
            closing = asyncio.ensure_future(self.worker.close(force=not settled))
            done, _ = await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT_SECONDS)
            if not done:
                log.warning(
                    "bullmq close did not finish, exiting anyway", extra={"timeout": CLOSE_TIMEOUT_SECONDS}
                )
            elif closing.exception() is not None:
                log.warning("bullmq close failed", extra={"error": repr(closing.exception())})
        else:
            await self.renders.close()
        if self._warming:  # a process it was starting is killed once it sees the pool closed
            await asyncio.gather(self._warming, return_exceptions=True)
        await self.queues.close()
        await self.monitor.close()
        return drained

    @property
    def fetching(self) -> bool:
        """False while the newest attempt to fetch a job failed (readiness turns red)."""
        return self.worker is None or self.worker.fetching

    async def _wait_idle(self, grace: float) -> bool:
        assert self.worker is not None
        deadline = time.monotonic() + grace
        while self.worker.jobs or not all(t.done() for t in self.worker.processing):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def process(self, job: Job, token: str) -> JobResult:
        """The BullMQ processor: run the pipeline for one job and map its outcome."""
        job_id, attempt = str(job.id), job.attemptsMade + 1
        started = time.monotonic()
        tally = self._tally
        tally.add(self.metrics.jobs_taken)
        poison: intake.Poison | None = getattr(job, "poison", None)
        if poison is not None:  # failed the JSON gate: dead-lettered with its raw bytes, never retried
            await self._give_up(job, token, poison.reason, "invalid", started, c.REASON_INVALID)
            raise UnrecoverableError(poison.reason)
        queues.apply_retry_policy(job, self.settings)
        active = self.metrics.jobs_in_flight
        tally.add(active)
        try:
            result = await pipeline.run(job_id, job.data, self.settings, self.rules, self.renders)
        except RenderCancelled:
            # Shutdown, not the job: back to the queue now, without using an attempt.
            await job.moveToDelayed(int(time.time() * 1000), token)
            log.info("job handed back: render stopped by shutdown", extra={"jobId": job_id})
            raise DelayedError() from None
        except (InvalidJobError, PermanentJobError) as err:
            outcome = "invalid" if isinstance(err, InvalidJobError) else "failed"
            await self._give_up(job, token, str(err), outcome, started, errors.reason_of(err))
            raise UnrecoverableError(str(err)) from err
        except Exception as err:
            reason, cause = f"{type(err).__name__}: {err}", errors.reason_of(err)
            if attempt >= int(job.opts.get("attempts") or 1):
                await self._give_up(job, token, reason, "failed", started, cause)
            else:
                self._ended(job, token, _Attempt("retried", reason=reason, cause=cause), started)
            raise
        finally:
            tally.add(active, -1)
        self._ended(job, token, _Attempt(result.outcome, ("reused",) if result.reused else ()), started)
        return {"outcome": result.outcome, "renditions": len((result.manifest or {}).get("renditions", []))}

    async def _give_up(
        self, job: Job, token: str, reason: str, outcome: str, started: float, cause: str
    ) -> None:
        # DLQ first: if we die before BullMQ marks the job failed, the job stalls and is retried,
        # and the DLQ write (keyed by job id) is idempotent.
        await self.queues.dead_letter(job, reason, job.attemptsMade + 1)
        extra = ("invalid", "dlq") if outcome == "invalid" else ("dlq",)
        self._ended(job, token, _Attempt("failed", extra, reason, cause), started)

    def _ended(self, job: Job, token: str, attempt: _Attempt, started: float) -> None:
        attempt.duration = duration = time.monotonic() - started
        self._tally.observe(self.metrics.job_duration, duration)
        self._ending[str(job.id), token] = attempt

    def _settled(self, job: Job, token: str, recorded: bool) -> None:
        """FastWorker's ``settled`` event: count and log the attempt if Redis recorded its finish."""
        attempt = self._ending.pop((str(job.id), token), None)
        if attempt is None:  # handed back (shutdown), or failed by bullmq before the processor ran
            return
        # bullmq counted the attempt once Redis recorded it; the attempt number is the same either way.
        number = job.attemptsMade + (0 if recorded else 1)
        extra: dict[str, Any] = {
            "jobId": str(job.id),
            "attempt": number,
            "duration": round(attempt.duration, 4),
        }
        if attempt.reason:
            extra["reason"], extra["cause"] = attempt.reason, attempt.cause
        if not recorded:
            self.metrics.outcome(c.UNRECORDED_OUTCOME, attempt.cause)
            log.warning(
                f"job {attempt.outcome} but not recorded: its lock was lost, the job runs again",
                extra={**extra, "outcome": c.UNRECORDED_OUTCOME},
            )
            return
        for outcome in (attempt.outcome, *attempt.extra):
            self._tally.add(self.metrics.outcome_series(outcome, attempt.cause))
        if attempt.outcome in c.GOOD_OUTCOMES and job.timestamp:
            # From the producer's clock to ours: a skew never makes a negative time.
            self._tally.observe(self.metrics.job_turnaround, max(0.0, time.time() - job.timestamp / 1000))
        if c.REUSED_OUTCOME in attempt.extra:
            extra["reused"] = True  # the artifacts an earlier, unrecorded attempt stored
        extra["outcome"] = attempt.outcome
        logs.info(log, f"job {attempt.outcome}", extra)  # log.info's line, without its record (#34)

    def _on_error(self, err: Any, *_: Any) -> None:
        log.warning("bullmq error", extra={"error": f"{type(err).__name__}: {err}"})

    async def _housekeep(self) -> None:
        interval = max(0.5, self.settings.stalled_interval_ms / 1000)
        while True:
            await self.housekeeping_round()
            tasks.checkpoint()
            await asyncio.sleep(interval)

    async def housekeeping_round(self) -> bool:
        """Sweep, trim the DLQ and refresh the depth gauges, each step on its own; True if all worked.

        A step that fails (or a job the sweep cannot dead-letter) is logged and counted, and the
        other steps still run; after ``HOUSEKEEPING_FAILING_ROUNDS`` rounds in a row with an error
        the failing gauge turns 1 (alert ``PreviewHousekeepingFailing``).
        """
        s = self.settings
        steps = {
            "sweep": self.sweep_failed,
            "trim": lambda: self.monitor.trim_dlq(s.keep_dlq_seconds, s.keep_dlq_count),
            "depth": self._refresh_depth,
        }
        self._round_errors = 0
        for step, run in steps.items():
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._housekeeping_error(step, "housekeeping step failed", err)
        return self.metrics.housekeeping_round(ok=self._round_errors == 0)

    async def _refresh_depth(self) -> None:
        self.metrics.set_depth(await self.monitor.counts())
        memory = await self.monitor.client.info("memory")
        self.metrics.set_redis_memory(int(memory["used_memory"]), int(memory["maxmemory"]))

    def _housekeeping_error(self, step: str, message: str, err: BaseException, **extra: Any) -> None:
        """Count and log a failed step or job; re-raise the stop instead when ``err`` is a
        client's own error for this task's cancellation (worker.tasks)."""
        tasks.reraise_cancel(err)
        self._round_errors += 1
        self.metrics.housekeeping_error(step)
        log.warning(message, extra={"step": step, "error": f"{type(err).__name__}: {err}"[:500], **extra})

    async def sweep_failed(self) -> int:
        """Dead-letter failed jobs that have no DLQ entry (failed by BullMQ itself); returns how many.

        Each job on its own: one that cannot be read or dead-lettered is logged, counted and skipped.
        """
        q = self.monitor
        # The newest failures only: older ones were swept in earlier rounds (and the set is capped).
        newest = await q.client.zrange(q.main.toKey("failed"), 0, c.SWEEP_FAILED_WINDOW - 1, desc=True)
        failed_ids = [str(i) for i in newest]
        if not failed_ids:
            return 0
        async with q.client.pipeline(transaction=False) as pipe:
            for job_id in failed_ids:
                pipe.exists(q.dlq.toKey(job_id))
            present = await pipe.execute()
        swept = 0
        for job_id, exists in zip(failed_ids, present, strict=True):
            if exists:
                continue
            try:
                swept += await self._sweep_one(job_id)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._housekeeping_error("sweep", "failed job not dead-lettered", err, jobId=job_id[:128])
        return swept

    async def _sweep_one(self, job_id: str) -> int:
        job = await self.monitor.get(job_id)
        if job is None:
            return 0
        reason = job.failedReason or "failed by the queue"
        if job.poison is not None:
            reason = f"{reason}; {job.poison.reason}"
        await self.monitor.dead_letter(job, reason, job.attemptsMade)
        # The job's one outcome: no attempt of it was recorded as failed (that would have written
        # the DLQ entry first), so the availability SLI sees it as failed, like any other.
        outcomes: tuple[str, ...]
        if job.poison is not None:
            outcomes, cause = ("failed", "invalid", "dlq"), c.REASON_INVALID
        else:
            outcomes, cause = ("failed", "dlq"), c.REASON_LOST
        for outcome in outcomes:
            self.metrics.outcome(outcome, cause)
        log.info("job dead-lettered by sweep", extra={"jobId": job_id, "outcome": "failed", "reason": reason})
        return 1
