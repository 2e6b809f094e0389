"""Throughput of the path users run (#18): ``python -m worker run`` on dryRun jobs against Node.js BullMQ.

Each measurement pre-fills a fresh queue of the same Redis with ``jobs`` valid dryRun jobs (a
tiny inline PNG, one output), then starts one worker process: ``python -m worker run``, the
whole path (job-id check, schema validation, metrics, a log line per job, outcome bookkeeping),
or the Node.js BullMQ 6.7 no-op worker of ``bench/node/noop.mjs``. The time comes from the jobs'
own stamps in Redis: the last ``finishedOn`` minus the first ``processedOn``, so neither process
start-up nor the enqueue counts for either side. Implementations are interleaved per round.
"""

from __future__ import annotations

import base64
import io
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import queue_suite
from bench.redis_kit import BenchRedis
from bench.worker_proc import spawn, worker_env
from worker import constants as c

REPO = Path(__file__).resolve().parent.parent
#: ``worker``: one ``python -m worker run``; ``worker-2p``: the same with PREVIEW_WORKER_PROCESSES=2.
IMPLS = ("worker", "node", "worker-2p")


def tiny_png() -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def fill(redis: BenchRedis, queue: str, jobs: int) -> None:
    """``jobs`` valid dryRun jobs, as a BullMQ producer adds them (custom ids, as the API does)."""
    source = {"inline": tiny_png()}
    outputs = [{"name": "thumb", "format": "webp", "width": 64, "height": 64}]
    payloads = [{"jobId": f"r{i}", "dryRun": True, "source": source, "outputs": outputs} for i in range(jobs)]
    redis.fill_jobs(queue, [(p, str(p["jobId"])) for p in payloads])


def stamps_rate(redis: BenchRedis, queue: str, jobs: int) -> float:
    """Jobs/s from Redis: ``jobs`` over the last ``finishedOn`` minus the first ``processedOn``."""
    pipe = redis.client.pipeline(transaction=False)
    for i in range(jobs):
        pipe.hmget(f"{c.BULL_PREFIX}:{queue}:r{i}", "processedOn", "finishedOn")
    rows = pipe.execute()
    if any(p is None or f is None for p, f in rows):
        raise RuntimeError(f"{sum(f is None for _, f in rows)} of {jobs} jobs have no finishedOn")
    first = min(int(p) for p, _ in rows)
    last = max(int(f) for _, f in rows)
    return jobs / max((last - first) / 1000, 1e-3)


def run_python(redis: BenchRedis, queue: str, concurrency: int, jobs: int, processes: int) -> int:
    """Run ``python -m worker run`` until every job completed; returns its peak RSS (KiB, largest process)."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as data_dir:
        env = worker_env(
            redis.url, queue, data_dir, concurrency=concurrency, worker_processes=processes,
            keep_completed_count=jobs,  # keep every job's stamps until they are read
            redis_budget_bytes=c.REDIS_BUDGET_BYTES_MAX,  # room to keep them all
        )  # fmt: skip
        proc = spawn(env)
        try:
            rss = _wait_completed(redis, queue, jobs, proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return rss


def _wait_completed(redis: BenchRedis, queue: str, jobs: int, proc: subprocess.Popen[str]) -> int:
    key = f"{c.BULL_PREFIX}:{queue}:completed"
    deadline = time.monotonic() + 600
    rss = 0
    while redis.client.zcard(key) < jobs:
        if proc.poll() is not None:
            raise RuntimeError(f"python -m worker run exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {redis.client.zcard(key)} of {jobs} jobs completed")
        rss = max(rss, _tree_rss_kb(proc.pid))
        time.sleep(0.02)
    return max(rss, _tree_rss_kb(proc.pid))


def _tree_rss_kb(pid: int) -> int:
    """The largest VmHWM among ``pid`` and its children (the supervisor's consumers)."""
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return 0
    best = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]))
        except OSError:
            continue
    return best


def throughput(redis: BenchRedis, concurrencies: list[int], jobs: int, rounds: int) -> dict[str, Any]:
    """Jobs/s per implementation and concurrency (``worker-2p`` at the largest only), median of rounds."""
    top = max(concurrencies)
    plan = [(impl, conc) for conc in concurrencies for impl in IMPLS if impl != "worker-2p" or conc == top]
    samples: dict[str, dict[int, list[float]]] = {}
    rss: dict[str, int] = {}
    for r in range(rounds):
        for conc in concurrencies:
            here = [impl for impl, cc in plan if cc == conc]
            for impl in here[r % len(here) :] + here[: r % len(here)]:
                queue = f"run-{uuid.uuid4().hex[:8]}"
                fill(redis, queue, jobs)
                if impl == "node":
                    out = queue_suite.run_worker("node", redis.url, queue, conc, jobs, "throughput")
                    peak = int(out["rss_peak_kb"])
                else:
                    peak = run_python(redis, queue, conc, jobs, 2 if impl == "worker-2p" else 1)
                samples.setdefault(impl, {}).setdefault(conc, []).append(stamps_rate(redis, queue, jobs))
                rss[impl] = max(rss.get(impl, 0), peak)
                redis.client.flushall()
            print(
                f"  run round {r + 1}/{rounds} c={conc}: "
                + ", ".join(f"{i} {samples[i][conc][-1]:.0f}/s" for i in here),
                file=sys.stderr,
            )
    median = {i: {str(cc): statistics.median(v) for cc, v in per.items()} for i, per in samples.items()}
    ratios = {
        f"{impl}/node": {cc: v / median["node"][cc] for cc, v in per.items()}
        for impl, per in median.items()
        if impl != "node"
    }
    return {"jobs": jobs, "rounds": rounds, "median": median, "ratios": ratios, "rss_peak_kb": rss}
