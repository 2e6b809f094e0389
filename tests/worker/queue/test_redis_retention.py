"""Redis stays bounded (#16 item 10): finished jobs leave by age or count, the DLQ is trimmed too.

Against a real redis-server and the real consumer. Before this, no job was ever removed.
"""

from __future__ import annotations

import asyncio

import worker_media as media
from worker_kit import b64, consumer, eventually, payload, queues

from worker import constants as c
from worker.queue.budget import DLQ_TRIM_SLACK
from worker.queue.queues import Queues
from worker.settings import Settings

INLINE = {"inline": b64(media.jpeg(64, 48))}


def dry(job_id: str) -> dict[str, object]:
    return payload(INLINE, job_id, dryRun=True)


def bad(job_id: str) -> dict[str, object]:
    return {"jobId": job_id, "source": INLINE, "outputs": []}  # invalid: dead-lettered at once


async def job_hashes(settings: Settings, q: Queues) -> int:
    keys = await q.client.keys(f"{c.BULL_PREFIX}:{settings.queue_name}:*")
    suffixes = {k.rsplit(":", 1)[1] for k in keys}
    return len([s for s in suffixes if s.startswith(("keep-", "bad-", "old-", "new-"))])


async def test_completed_jobs_beyond_the_count_are_removed(settings: Settings) -> None:
    small = settings.model_copy(update={"keep_completed_count": 3})
    async with queues(small) as q, consumer(small):
        for i in range(10):
            await q.main.add(c.JOB_NAME, dry(f"keep-{i}"), {"jobId": f"keep-{i}"})

        async def all_done() -> bool:
            counts = await q.main.getJobCounts("wait", "active")
            return counts["wait"] + counts["active"] == 0

        await eventually(all_done, 30)
        await asyncio.sleep(0.3)
        assert (await q.counts())["completed"] == 3
        assert await job_hashes(small, q) == 3  # the removed jobs' hashes are gone too
        assert await q.get("keep-9") is not None and await q.get("keep-0") is None


async def test_completed_jobs_older_than_the_age_are_removed(settings: Settings) -> None:
    short = settings.model_copy(update={"keep_completed_seconds": 1})
    async with queues(short) as q, consumer(short):
        await q.main.add(c.JOB_NAME, dry("old-1"), {"jobId": "old-1"})
        await eventually(lambda: _state(q, "old-1", "completed"), 15)
        await asyncio.sleep(1.5)
        await q.main.add(c.JOB_NAME, dry("new-1"), {"jobId": "new-1"})  # its completion cleans by age
        await eventually(lambda: _state(q, "new-1", "completed"), 15)
        await eventually(lambda: _gone(q, "old-1"), 5)


async def test_failed_jobs_are_capped_and_every_one_is_in_the_dlq(settings: Settings) -> None:
    small = settings.model_copy(update={"keep_failed_count": 2})
    async with queues(small) as q, consumer(small):
        for i in range(5):
            await q.main.add(c.JOB_NAME, bad(f"bad-{i}"), {"jobId": f"bad-{i}", "attempts": 1})

        async def dead_lettered() -> bool:
            return len(await q.dlq_entries()) == 5

        await eventually(dead_lettered, 30)
        await asyncio.sleep(0.3)
        assert (await q.counts())["failed"] == 2


async def test_the_dlq_is_trimmed_by_count_and_by_age(settings: Settings) -> None:
    async with queues(settings) as q:
        for i in range(5):
            await q.dlq.add(c.JOB_NAME, {"jobId": f"d-{i}", "data": {}, "reason": "x"}, {"jobId": f"d-{i}"})
        assert await q.trim_dlq(max_age_seconds=3600, max_count=2) == 3
        assert sorted(str(e.data["jobId"]) for e in await q.dlq_entries()) == ["d-3", "d-4"]
        await asyncio.sleep(1.1)
        assert await q.trim_dlq(max_age_seconds=1, max_count=100) == 2
        assert await q.dlq_entries() == []


async def test_a_burst_of_failures_is_trimmed_as_it_is_dead_lettered_not_only_by_housekeeping(
    settings: Settings,
) -> None:
    # Housekeeping runs once, at start; its next round would come only after the test.
    small = settings.model_copy(update={"keep_dlq_count": 5, "stalled_interval_ms": 600_000})
    burst = 5 + DLQ_TRIM_SLACK + 30
    async with queues(small) as q, consumer(small):
        await q.main.addBulk([
            {"name": c.JOB_NAME, "data": bad(f"bad-{i}"), "opts": {"jobId": f"bad-{i}", "attempts": 1}}
            for i in range(burst)
        ])  # fmt: skip

        async def all_failed() -> bool:
            return (await q.counts())["failed"] == burst

        await eventually(all_failed, 60)
        await asyncio.sleep(0.3)
        entries = len(await q.dlq_entries())
        assert 5 <= entries <= 5 + DLQ_TRIM_SLACK, entries
        assert await q.get("bad-0") is not None  # the failed jobs themselves stay, by their own count


async def _state(q: Queues, job_id: str, state: str) -> bool:
    job = await q.get(job_id)
    return job is not None and await job.getState() == state


async def _gone(q: Queues, job_id: str) -> bool:
    return await q.get(job_id) is None
