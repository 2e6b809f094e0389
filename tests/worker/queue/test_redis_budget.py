"""The inline cap follows the Redis budget (#16 item 10), and the budget's arithmetic holds on a real Redis.

The worst case of ``worker.queue.budget`` (held jobs times the largest job) is only worth
something if a real job is never bigger than :func:`job_bytes` says: the last tests fill a real
redis-server with jobs at the cap, completed and dead-lettered by the real consumer, and compare
``used_memory``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from worker_kit import consumer, eventually, queues

from worker import constants as c
from worker.queue.budget import DLQ_TRIM_SLACK, BudgetError, Held, inline_cap, job_bytes, largest_inline
from worker.settings import Settings

REPO = Path(__file__).resolve().parents[3]
OUTPUT = {"name": "s", "width": 8, "height": 8, "format": "webp"}
NAMES = {"budget": "B", "inline": "I", "counts": "N"}


@pytest.mark.parametrize("budget", [64 * 2**20, 2 * 2**30, 8 * 2**30, 10**12 + 7])
@pytest.mark.parametrize("jobs", [21, 7_020, 27_000])
def test_the_largest_cap_fits_the_budget_and_one_more_step_does_not(budget: int, jobs: int) -> None:
    held = Held(jobs, 0, 0, 0)
    cap = largest_inline(budget, held)
    if cap == 0:
        assert held.jobs * job_bytes(3) > budget
        return
    assert held.jobs * job_bytes(cap) <= budget
    assert held.jobs * job_bytes(cap + 3) > budget  # base64 grows in steps of 3 source bytes


def test_the_default_cap_is_the_largest_that_fits_up_to_ten_mib() -> None:
    default = Settings()
    assert default.held_jobs.jobs == 20 + 1_000 + 5_000 + 1_000 + DLQ_TRIM_SLACK
    assert default.inline_bytes == largest_inline(c.REDIS_BUDGET_BYTES_DEFAULT, default.held_jobs)
    assert 100_000 < default.inline_bytes < 200_000
    roomy = Settings(PREVIEW_REDIS_BUDGET_BYTES=str(c.REDIS_BUDGET_BYTES_MAX))
    assert roomy.inline_bytes == c.INLINE_BYTES_MAX_DEFAULT


def test_an_explicit_cap_that_fits_is_kept_and_one_that_does_not_is_refused() -> None:
    held = Held(20, 1_000, 5_000, 1_000)
    fits = largest_inline(2 * 2**30, held)
    assert inline_cap(2 * 2**30, held, 5_000, NAMES) == 5_000
    with pytest.raises(BudgetError) as err:
        inline_cap(2 * 2**30, held, fits + 3, NAMES)
    assert err.value.key == "I" and f"the largest cap that fits is {fits}" in err.value.reason


def worker_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_")}
    return subprocess.run(
        [sys.executable, "-m", "worker", "run"], cwd=REPO, env={**base, **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_cap_over_the_budget_stops_the_worker_with_exit_2_naming_the_key_and_no_secret() -> None:
    done = worker_cli({
        "REDIS_URL": "redis://:hunter2-secret@127.0.0.1:1",
        "PREVIEW_API_TOKENS": "enqueue:tok-secret-value-1234567890",
        "PREVIEW_MAX_INLINE_BYTES": str(10 * 2**20),
    })  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "PREVIEW_MAX_INLINE_BYTES: 10485760 bytes of inline source in each of 7120 jobs" in done.stderr
    assert f"the largest cap that fits is {Settings().inline_bytes}" in done.stderr
    assert "hunter2" not in done.stderr and "tok-secret" not in done.stderr


def test_a_budget_too_small_for_the_retention_counts_is_refused_naming_the_budget() -> None:
    done = worker_cli({
        "PREVIEW_REDIS_BUDGET_BYTES": str(c.REDIS_BUDGET_BYTES_MIN), "PREVIEW_KEEP_FAILED_COUNT": "100000",
    })  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "PREVIEW_REDIS_BUDGET_BYTES: 16777216 bytes cannot hold 102120 jobs" in done.stderr


async def used_memory(client: object) -> int:
    info = await client.info("memory")  # type: ignore[attr-defined]
    return int(info["used_memory"])


def incompressible(size: int) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def heavy_metadata() -> dict[str, str]:
    """Metadata just under the stored limit: non-ASCII, so BullMQ escapes it to six bytes a character."""
    per_value = (c.METADATA_MAX_BYTES - 32 * 12) // 32 // 6
    return {f"k{i:02d}": "é" * per_value for i in range(32)}


async def test_a_job_at_the_cap_never_takes_more_redis_than_job_bytes_says(settings: Settings) -> None:
    cap = 64 * 2**10
    held = settings.model_copy(update={"max_inline_bytes": cap, "keep_completed_count": 1000})
    jobs_each = 40
    async with queues(held) as q:
        await q.client.execute_command("MEMORY", "PURGE")
        before = await used_memory(q.client)
        async with consumer(held):
            for i in range(jobs_each):
                ok = {
                    "jobId": f"ok-{i}", "dryRun": True, "metadata": heavy_metadata(),
                    "source": {"inline": incompressible(cap)}, "outputs": [OUTPUT],
                }  # fmt: skip
                # Invalid (an unknown property and a bad output): failed and dead-lettered, two copies.
                bad = {**ok, "jobId": f"bad-{i}", "extra": "x" * 1024, "outputs": [{"name": "?"}] * 8}
                await q.main.add(c.JOB_NAME, ok, {"jobId": f"ok-{i}"})
                await q.main.add(c.JOB_NAME, bad, {"jobId": f"bad-{i}", "attempts": 3})

            async def finished() -> dict[str, int] | None:
                counts = await q.counts()
                return counts if counts["completed"] == jobs_each and counts["dlq"] == jobs_each else None

            await eventually(finished, 60)
        used = await used_memory(q.client) - before
    copies = 3 * jobs_each  # completed, failed, and the failed one's DLQ copy
    print(f"{used / copies:.0f} bytes per stored job, job_bytes says {job_bytes(cap)}")
    assert used <= copies * job_bytes(cap)
    assert used >= copies * cap  # the jobs really are in Redis: base64 of the source at least


def test_the_heavy_metadata_above_is_at_the_stored_limit() -> None:
    stored = len(json.dumps(heavy_metadata(), separators=(",", ":")))
    assert c.METADATA_MAX_BYTES - 400 < stored <= c.METADATA_MAX_BYTES
