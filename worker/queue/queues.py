"""Queue operations shared by the API, the consumer and ``redrive``: enqueue, status, counts, DLQ.

The DLQ is a second BullMQ queue, ``<queue>-dlq``, that nothing consumes: each
entry is keyed by the original job ID and holds the payload, the reason and
the enqueue options, so ``redrive`` can put it back exactly as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from bullmq import Job, Queue
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mobius_preview_client import intake, jobs

# The one way the worker connects too (re-exported for the worker's processes).
from mobius_preview_client.client import redis_client as redis_client
from mobius_preview_client.contract import validation
from worker import constants as c
from worker.queue.budget import DLQ_TRIM_SLACK
from worker.settings import Settings
from worker.tunables import Tunables

# What counts as "Redis is unreachable" for the API's 503 and the health probes.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError)
WAITING_STATES = jobs.WAITING_STATES


def retry_policy(settings: Tunables) -> dict[str, Any]:
    """The worker's retry policy as BullMQ options: ``PREVIEW_JOB_ATTEMPTS``, exponential backoff."""
    return jobs.retry_policy(settings.job_attempts, settings.backoff_ms)


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
    """BullMQ options for a preview job: idempotent id, priority, the retry policy (or ``attempts``)."""
    return jobs.options(attempts or settings.job_attempts, settings.backoff_ms, job_id, priority)


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
        """The main-queue job, or None (:func:`mobius_preview_client.jobs.get`: through the JSON gate)."""
        return await jobs.get(self.main, job_id, self.max_data_bytes)

    @property
    def max_data_bytes(self) -> int:
        """The largest job data worth reading (the JSON gate's bound)."""
        return validation.max_payload_bytes(self.settings.inline_bytes)

    async def state(self, job_id: str) -> str:
        """The job's state, ``unknown`` if there is none (:func:`mobius_preview_client.jobs.state`)."""
        return await jobs.state(self.main, job_id)

    async def with_state(self, job_id: str) -> tuple[Job, str] | None:
        """The job (not its data) and its state, or None (:func:`mobius_preview_client.jobs.with_state`)."""
        return await jobs.with_state(self.main, job_id)

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
        """Jobs not finished yet (:func:`mobius_preview_client.jobs.unfinished`): what
        ``PREVIEW_QUEUE_MAX`` caps; with the retention counts it bounds every job Redis holds
        (:mod:`worker.queue.budget`)."""
        return await jobs.unfinished(self.main)

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
