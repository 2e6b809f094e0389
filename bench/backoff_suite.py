"""Redis memory while retries wait out long backoffs (#30 item 3): the peak stays within the budget.

One ``python -m worker run`` (concurrency 50) with a small ``PREVIEW_QUEUE_MAX``, its retention
counts and ``PREVIEW_REDIS_BUDGET_BYTES`` set. A producer adds ``jobs`` jobs through the client
library's :meth:`~mobius_preview_client.client.AsyncPreviewClient.enqueue` (the path the job API
takes), and backs off and retries on ``QueueFullError`` (the API's 429) until every job is in.
Most jobs are dryRun jobs with a 16 KiB inline source; every ``FAIL_EVERY``-th has a URL source
on a local HTTP server that answers 503, which the worker treats as transient: it retries with
the long backoff, so those jobs sit in ``delayed`` and hold queue slots, then fail and are
dead-lettered. A thread samples Redis's ``used_memory`` and the delayed count throughout; the
peak over the baseline is compared with the budget and with the worst case the budget's
arithmetic (:mod:`worker.queue.budget`) predicts.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import os
import signal
import tempfile
import threading
import time
import uuid
from typing import Any

from bench.preview_suite import _wait_ready
from bench.redis_kit import BenchRedis
from bench.redis_suite import INLINE_BYTES
from bench.worker_proc import spawn, worker_env
from worker import constants as c
from worker.queue.budget import job_bytes
from worker.settings import Settings

#: Every this-many-th job fails transiently (its URL source answers 503).
FAIL_EVERY = 10
BUDGET_BYTES = 512 * 2**20
KEEP = {"keep_completed_count": 1000, "keep_failed_count": 1000, "keep_dlq_count": 1000}


class _Unavailable(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def run(redis: BenchRedis, jobs: int, backoff_ms: int, queue_max: int) -> dict[str, Any]:
    """Add ``jobs`` jobs past 429s (at most ``queue_max`` unfinished), drain them, sample Redis."""
    queue = f"backoff-{uuid.uuid4().hex[:8]}"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    tunables: dict[str, Any] = {
        "concurrency": 50, "queue_max": queue_max, "backoff_ms": backoff_ms, "job_attempts": 2,
        "redis_budget_bytes": BUDGET_BYTES, "source_hosts": host, "source_private_addresses": "allow", **KEEP,
    }  # fmt: skip
    settings = Settings(**tunables)
    with tempfile.TemporaryDirectory(prefix="bench-backoff-data-") as data_dir:
        worker = spawn(worker_env(redis.url, queue, data_dir, **tunables), output=True)
        sampler = _Sampler(redis, queue)
        try:
            _wait_ready(worker)
            redis.client.execute_command("MEMORY", "PURGE")
            baseline = int(redis.client.info("memory")["used_memory"])
            sampler.start()
            started = time.perf_counter()
            refused = asyncio.run(_produce(redis.url, queue, jobs, settings, f"http://{host}/x"))
            kept = _drained(redis, queue, jobs)
            seconds = time.perf_counter() - started
        finally:
            sampler.stop()
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
            server.shutdown()
    worst = settings.held_jobs.jobs * job_bytes(INLINE_BYTES)
    peak = max(s["used_memory"] for s in sampler.samples) - baseline
    return {
        "jobs": jobs,
        "failing": len(range(0, jobs, FAIL_EVERY)),
        "backoff_ms": backoff_ms,
        "queue_max": queue_max,
        "keep": KEEP,
        "seconds": round(seconds, 1),
        "refused_429": refused,
        "kept": kept,
        "samples": len(sampler.samples),
        "delayed_max": max(s["delayed"] for s in sampler.samples),
        "unfinished_max": max(s["unfinished"] for s in sampler.samples),
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "worst_case_bytes": worst,
        "budget_bytes": BUDGET_BYTES,
        "within_budget": peak <= BUDGET_BYTES,
    }


async def _produce(redis_url: str, queue: str, jobs: int, settings: Settings, failing_url: str) -> int:
    """Enqueue every job, sleeping and retrying on a full queue; how many times it was refused."""
    from mobius_preview_client.client import AsyncPreviewClient
    from mobius_preview_client.errors import QueueFullError

    inline = base64.b64encode(os.urandom(INLINE_BYTES)).decode()
    output = {"name": "s", "format": "webp", "width": 64, "height": 64}
    refused = 0
    options = {
        "queue_name": queue, "queue_max": settings.queue_max, "job_attempts": settings.job_attempts,
        "backoff_ms": settings.backoff_ms, "max_inline_bytes": settings.inline_bytes,
    }  # fmt: skip
    async with AsyncPreviewClient(redis_url, **options) as client:
        for i in range(jobs):
            job: dict[str, Any] = {"jobId": f"j{i}", "outputs": [output]}
            if i % FAIL_EVERY:
                job |= {"dryRun": True, "source": {"inline": inline}}
            else:
                job["source"] = {"url": failing_url}
            pause = 0.01
            while True:
                try:
                    await client.enqueue(job)
                    break
                except QueueFullError:
                    refused += 1
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.5)
    return refused


class _Sampler(threading.Thread):
    """Reads ``used_memory`` and the queue's counts every 50 ms until stopped."""

    def __init__(self, redis: BenchRedis, queue: str) -> None:
        super().__init__(daemon=True)
        self.redis, self.key = redis, f"{c.BULL_PREFIX}:{queue}"
        self.samples: list[dict[str, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.05):
            self.samples.append(self.sample())
        self.samples.append(self.sample())

    def sample(self) -> dict[str, int]:
        k, pipe = self.key, self.redis.client.pipeline(transaction=True)  # one snapshot: MULTI/EXEC
        pipe.zcard(f"{k}:delayed").llen(f"{k}:wait").zcard(f"{k}:prioritized").llen(f"{k}:active")
        delayed, *rest = (int(n) for n in pipe.execute())
        used = int(self.redis.client.info("memory")["used_memory"])
        return {"used_memory": used, "delayed": delayed, "unfinished": delayed + sum(rest)}

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()


def _drained(redis: BenchRedis, queue: str, jobs: int, timeout: float = 1800) -> dict[str, int]:
    """Wait until every job finished; how many completed and failed jobs are kept (the counts cap them)."""
    k = f"{c.BULL_PREFIX}:{queue}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = redis.client
        busy = (
            r.llen(f"{k}:wait")
            + r.zcard(f"{k}:prioritized")
            + r.zcard(f"{k}:delayed")
            + r.llen(f"{k}:active")
        )
        if not busy:
            return {"completed": int(r.zcard(f"{k}:completed")), "failed": int(r.zcard(f"{k}:failed"))}
        time.sleep(0.1)
    raise RuntimeError(f"the worker did not finish {jobs} jobs within {timeout:.0f} s")
