"""Redis memory over a long run (#16 item 10): it levels off at the retention counts and stays there.

One ``python -m worker run`` (concurrency 50, the default retention and Redis budget) drains
batches of jobs that a BullMQ producer adds: half valid dryRun jobs with a 16 KiB inline source
(completed), half invalid (failed and dead-lettered at once, the costliest kind). After each
batch is drained the suite reads ``used_memory`` and the counts from Redis itself. Memory rises
until the completed, failed and DLQ counts reach their caps, and then must stay flat.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.preview_suite import _wait_ready
from bench.redis_kit import BenchRedis
from bench.worker_proc import spawn, worker_env
from worker import constants as c
from worker.queue.budget import job_bytes
from worker.settings import Settings

INLINE_BYTES = 16 * 2**10
REPO = Path(__file__).resolve().parent.parent


def run(redis: BenchRedis, jobs: int, batch: int) -> dict[str, Any]:
    """Drain ``jobs`` jobs in batches of ``batch``; one sample of Redis per batch."""
    queue = f"mem-{uuid.uuid4().hex[:8]}"
    defaults = Settings()
    with tempfile.TemporaryDirectory(prefix="bench-redis-data-") as data_dir:
        env = worker_env(redis.url, queue, data_dir, concurrency=50)
        worker = spawn(env, output=True)
        try:
            _wait_ready(worker)
            redis.client.execute_command("MEMORY", "PURGE")
            baseline = int(redis.client.info("memory")["used_memory"])
            samples = asyncio.run(_drive(redis, queue, jobs, batch))
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
    used = [s["used_memory"] - baseline for s in samples]
    half = len(used) // 2
    worst = defaults.held_jobs.jobs * job_bytes(INLINE_BYTES)
    return {
        "jobs": jobs,
        "batch": batch,
        "inline_bytes": INLINE_BYTES,
        "samples": samples,
        "baseline_bytes": baseline,
        "peak_bytes": max(used),
        # After the caps are reached (the first half), the newest sample over the half-way one.
        "second_half_growth": used[-1] / used[half - 1] if half and used[half - 1] else None,
        "worst_case_bytes": worst,
        "budget_bytes": defaults.redis_budget_bytes,
        "kept": {k: samples[-1][k] for k in ("completed", "failed", "dlq")},
        "caps": {
            "completed": defaults.keep_completed_count,
            "failed": defaults.keep_failed_count,
            "dlq": defaults.keep_dlq_count,
        },
    }


async def _drive(redis: BenchRedis, queue: str, jobs: int, batch: int) -> list[dict[str, int]]:
    from bullmq import Queue

    inline = base64.b64encode(os.urandom(INLINE_BYTES)).decode()
    output = {"name": "s", "format": "webp", "width": 64, "height": 64}
    q = Queue(queue, {"connection": redis.url, "prefix": c.BULL_PREFIX})
    dlq = Queue(queue + c.DLQ_SUFFIX, {"connection": redis.url, "prefix": c.BULL_PREFIX})
    samples = []
    try:
        for start in range(0, jobs, batch):
            entries = []
            for i in range(start, min(start + batch, jobs)):
                data: dict[str, Any] = {
                    "jobId": f"j{i}", "dryRun": True, "source": {"inline": inline}, "outputs": [output],
                }  # fmt: skip
                if i % 2:
                    data["unknown"] = True  # invalid: failed and dead-lettered at once
                entries.append({"name": c.JOB_NAME, "data": data, "opts": {"jobId": f"j{i}", "attempts": 3}})
            await q.addBulk(entries)
            await _drained(q, min(start + batch, jobs))
            counts = await q.getJobCounts("completed", "failed")
            samples.append({
                "jobs": min(start + batch, jobs),
                "used_memory": int(redis.client.info("memory")["used_memory"]),
                "completed": counts["completed"],
                "failed": counts["failed"],
                "dlq": (await dlq.getJobCounts("wait"))["wait"],
            })  # fmt: skip
    finally:
        await q.close()
        await dlq.close()
    return samples


async def _drained(q: Any, total: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = await q.getJobCounts("wait", "active", "prioritized", "delayed")
        if not any(counts.values()):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the worker did not drain {total} jobs within {timeout:.0f} s")
