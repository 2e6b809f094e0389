"""One job on a BullMQ queue, as the client, the job API and the worker read and add it.

Every read goes through the one JSON gate (:func:`mobius_preview_client.intake.from_raw`), and
every id through :func:`~mobius_preview_client.contract.jobid.safe`; every add carries the
worker's retry policy (:func:`options`), so a job is the same whoever added it.
"""

from __future__ import annotations

from typing import Any, cast

from bullmq import Job, Queue

from mobius_preview_client import intake
from mobius_preview_client.contract import jobid
from mobius_preview_client.contract.documents import JobState, JobStatus

#: Job states after which nothing more happens to a job.
FINAL_STATES = frozenset({"completed", "failed"})
#: BullMQ's states of a job that waits to run (plain, paused, prioritised).
WAITING_STATES = ("wait", "paused", "prioritized")


def retry_policy(attempts: int, backoff_ms: int) -> dict[str, Any]:
    """The worker's retry policy as BullMQ options: ``attempts``, exponential backoff from ``backoff_ms``."""
    return {"attempts": attempts, "backoff": {"type": "exponential", "delay": backoff_ms}}


def options(attempts: int, backoff_ms: int, job_id: str | None = None, priority: int = 0) -> dict[str, Any]:
    """BullMQ options for a preview job: the retry policy, its idempotent id and its priority."""
    opts = retry_policy(attempts, backoff_ms)
    if job_id:
        opts["jobId"] = job_id
    if priority:
        opts["priority"] = priority
    return opts


async def state(queue: Queue, job_id: str) -> str:
    """The job's state in one script call, without reading its data; ``unknown`` if there is none
    (also for an id that is no job's: ``meta``, ``<job>:lock``)."""
    if not jobid.safe(job_id):
        return "unknown"
    return str(await queue.backend.getState(job_id))


async def get(queue: Queue, job_id: str, max_data_bytes: int | None) -> Job | None:
    """The job, or None; read through the JSON gate (``job.poison`` is set when it fails it)."""
    if not jobid.safe(job_id):
        return None
    raw = await queue.backend.getJobData(job_id)
    if not raw:
        return None
    return intake.from_raw(queue, raw, job_id, max_data_bytes)


async def without_data(queue: Queue, job_id: str) -> Job | None:
    """The job with every field but its data (``job.data`` is None), or None: what its status
    needs. A near-cap job's data is 16 MiB, which reading would move over the wire and parse
    (tens of milliseconds of the caller's event loop) for nothing."""
    if not jobid.safe(job_id):
        return None
    key = queue.toKey(job_id)
    fields = [f for f in await queue.client.hkeys(key) if f != "data"]
    values = await queue.client.hmget(key, fields) if fields else []
    if not fields or None in values:  # no job, or removed between the two reads
        return None
    return intake.from_raw(queue, {**dict(zip(fields, values, strict=True)), "data": "null"}, job_id, None)


async def with_state(queue: Queue, job_id: str) -> tuple[Job, str] | None:
    """The job (:func:`without_data`) and its state, or None. The state is read first: BullMQ
    writes a job's final fields and moves it in one script, so a final state always comes with its
    result (read the other way round, a job finishing between the reads showed ``completed`` with
    no result)."""
    found = await state(queue, job_id)
    job = await without_data(queue, job_id) if found != "unknown" else None
    return (job, found) if job is not None else None


async def unfinished(queue: Queue) -> int:
    """Jobs not finished yet: waiting (plain, paused, prioritised), delayed (a retry's backoff) or
    active. What ``PREVIEW_QUEUE_MAX`` caps."""
    counts = await queue.getJobCounts(*WAITING_STATES, "delayed", "active")
    return sum(counts.values())


def status(job: Job, state: str) -> JobStatus:
    """The job's status document (the API's ``GET …/job/{id}/status``)."""
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
