"""Queue operations shared by the API, the consumer and ``redrive``: enqueue, status, counts, DLQ.

The DLQ is a second BullMQ queue, ``<queue>-dlq``, that nothing consumes: each
entry is keyed by the original job ID and holds the payload, the reason and
the enqueue options, so ``redrive`` can put it back exactly as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from bullmq import Job, Queue
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from worker import constants as c
from worker.contract import jobid, validation
from worker.contract.documents import JobState, JobStatus
from worker.queue import connections, intake
from worker.queue.budget import DLQ_TRIM_SLACK
from worker.settings import Settings
from worker.tunables import Tunables

# What counts as "Redis is unreachable" for the API's 503 and the health probes.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError)
WAITING_STATES = ("wait", "paused", "prioritized")


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


def retry_policy(settings: Tunables) -> dict[str, Any]:
    """The worker's retry policy as BullMQ options: ``PREVIEW_JOB_ATTEMPTS``, exponential backoff."""
    return {
        "attempts": settings.job_attempts,
        "backoff": {"type": "exponential", "delay": settings.backoff_ms},
    }


def apply_retry_policy(job: Job, settings: Settings) -> None:
    """Give a job that came without ``attempts`` (a Node.js or raw producer's job added with no
    options, which BullMQ would fail at its first error) the worker's own policy, for this attempt's
    retry decision. A job's own ``attempts`` and ``backoff`` are kept."""
    if not job.opts.get("attempts"):  # bullmq reads a missing value as 0: fail, never retry
        policy = retry_policy(settings)
        job.opts["attempts"] = policy["attempts"]
        if not job.opts.get("backoff"):
            job.opts["backoff"] = policy["backoff"]


def job_options(
    settings: Settings, job_id: str | None, priority: int, attempts: int | None = None
) -> dict[str, Any]:
    """BullMQ options for a preview job: idempotent id, priority, the retry policy."""
    opts = retry_policy(settings)
    if attempts:
        opts["attempts"] = attempts
    if job_id:
        opts["jobId"] = job_id
    if priority:
        opts["priority"] = priority
    return opts


@dataclass
class Queues:
    """The main queue and its DLQ on one Redis client."""

    settings: Settings
    client: aioredis.Redis

    def __post_init__(self) -> None:
        conn = {"connection": self.client, "prefix": c.BULL_PREFIX}
        self.main = Queue(self.settings.queue_name, conn)
        self.dlq = Queue(self.settings.dlq_name, conn)

    async def close(self) -> None:
        """Close the Redis client."""
        await self.client.aclose()

    async def ping(self) -> bool:
        """True when Redis answers."""
        return bool(await self.client.ping())

    async def get(self, job_id: str) -> Job | None:
        """The main-queue job, or None (also for an id that is no job's: ``meta``, ``<job>:lock``).

        Read through the one JSON gate: a job that fails it has ``job.poison`` set
        (:mod:`worker.queue.intake`); every other job has ``job.poison`` None.
        """
        if not jobid.safe(job_id):
            return None
        raw = await self.main.backend.getJobData(job_id)
        if not raw:
            return None
        return intake.from_raw(self.main, raw, job_id, self.max_data_bytes)

    @property
    def max_data_bytes(self) -> int:
        """The largest job data worth reading (the JSON gate's bound)."""
        return validation.max_payload_bytes(self.settings.inline_bytes)

    async def state(self, job_id: str) -> str:
        """The job's state in one script call, without reading its data; ``unknown`` if there is none."""
        if not jobid.safe(job_id):
            return "unknown"
        return str(await self.main.backend.getState(job_id))

    async def with_state(self, job_id: str) -> tuple[Job, str] | None:
        """The job and its state, or None. The state is read first: BullMQ writes a job's final
        fields and moves it in one script, so a final state always comes with its result (read the
        other way round, a job finishing between the reads showed ``completed`` with no result)."""
        found = await self.state(job_id)
        job = await self.get(job_id) if found != "unknown" else None
        return (job, found) if job is not None else None

    async def enqueue(self, payload: dict[str, Any]) -> tuple[str, bool]:
        """Add a job; returns (job id, created). A repeated ``jobId`` returns the existing job."""
        job_id = payload.get("jobId")
        if job_id and await self.state(job_id) != "unknown":
            return job_id, False
        return await self.add(payload), True

    async def add(self, payload: dict[str, Any]) -> str:
        """Add a job without looking for one of its id first (BullMQ keeps an existing one); its id."""
        opts = job_options(self.settings, payload.get("jobId"), int(payload.get("priority", 0)))
        job = await self.main.add(c.JOB_NAME, payload, opts)
        return str(job.id)

    async def unfinished(self) -> int:
        """Jobs not finished yet: waiting (plain, paused, prioritised), delayed (a retry's backoff)
        or active. What ``PREVIEW_QUEUE_MAX`` caps: with the retention counts it bounds every job
        Redis holds (:mod:`worker.queue.budget`)."""
        counts = await self.main.getJobCounts(*WAITING_STATES, "delayed", "active")
        return sum(counts.values())

    async def counts(self) -> dict[str, int]:
        """Counts for every state in ``constants.QUEUE_STATES`` (``waiting`` includes prioritised)."""
        raw = await self.main.getJobCounts(*WAITING_STATES, "active", "completed", "failed", "delayed")
        dlq = await self.dlq.getJobCounts(*WAITING_STATES)
        return {
            "waiting": raw["wait"] + raw["paused"] + raw["prioritized"],
            "active": raw["active"],
            "completed": raw["completed"],
            "failed": raw["failed"],
            "delayed": raw["delayed"],
            "dlq": sum(dlq.values()),
        }

    async def dead_letter(self, job: Job, reason: str, attempts_made: int) -> None:
        """Record ``job`` in the DLQ with its data, options and ``reason`` (idempotent by job id)."""
        poison: intake.Poison | None = getattr(job, "poison", None)
        entry = {
            "jobId": str(job.id),
            "data": job.data,
            "reason": reason,
            "attemptsMade": attempts_made,
            "failedAt": int(time.time() * 1000),
            "opts": {"priority": job.opts.get("priority", 0), "attempts": job.opts.get("attempts", 1)},
        }
        if poison is not None:  # data and opts as Redis held them (bounded): nothing is lost
            entry |= {"data": None, "raw": poison.raw, "opts": {"priority": 0, "attempts": 1}}
        await self.dlq.add(c.JOB_NAME, entry, {"jobId": str(job.id)})
        # Trimmed here as well as by housekeeping, so a burst of failures cannot outgrow the count.
        keep = self.settings.keep_dlq_count
        if await self.client.llen(self.dlq.toKey("wait")) > keep + DLQ_TRIM_SLACK:
            await self.trim_dlq(self.settings.keep_dlq_seconds, keep)

    async def trim_dlq(self, max_age_seconds: int, max_count: int) -> int:
        """Remove DLQ entries older than ``max_age_seconds`` and beyond the newest ``max_count``."""
        removed = len(await self.dlq.clean(max_age_seconds * 1000, 0, "wait"))
        # By id, never parsed: an entry a raw producer wrote into the DLQ cannot stop the trim.
        extra = await self.dlq.backend.getRanges(list(WAITING_STATES), max_count, max_count + 999, False)
        for entry_id in extra:
            await self.dlq.remove(entry_id)
        return removed + len(extra)

    async def dlq_entries(self) -> list[Job]:
        """Every DLQ entry, oldest first."""
        return await self.dlq.getJobs(list(WAITING_STATES), asc=True)  # type: ignore[no-any-return]

    async def redrive(self) -> list[str]:
        """Move every DLQ entry back to the main queue with its original id and options; returns the ids."""
        moved = []
        for entry in await self.dlq_entries():
            if entry.data.get("data") is None and "raw" in entry.data:
                continue  # a job that failed the JSON gate: nothing to send back; it stays for a person
            job_id = str(entry.data["jobId"])
            current = await self.get(job_id)
            if current is not None:
                if await current.getState() not in ("failed", "completed"):
                    await self.dlq.remove(entry.id)  # already back in play
                    continue
                await self.main.remove(job_id)
            opts = entry.data.get("opts", {})
            await self.main.add(
                c.JOB_NAME,
                entry.data["data"],
                job_options(self.settings, job_id, int(opts.get("priority", 0)), opts.get("attempts")),
            )
            await self.dlq.remove(entry.id)
            moved.append(job_id)
        return moved


def status(job: Job, state: str) -> JobStatus:
    """The API's status document for one job (``state`` as ``getState`` answered it)."""
    return {
        "jobId": str(job.id),
        "state": cast(JobState, state),
        "attemptsMade": job.attemptsMade,
        "attempts": job.opts.get("attempts", 1),
        "progress": job.progress,
        "failedReason": job.failedReason,
        "timestamp": job.timestamp,
        "processedOn": job.processedOn or None,
        "finishedOn": job.finishedOn or None,
    }
