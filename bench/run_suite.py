"""Throughput of the path users run (#18): ``python -m worker run`` on dryRun jobs against Node.js BullMQ.

Each measurement pre-fills a fresh queue of the same Redis with ``jobs`` valid dryRun jobs (a
tiny inline PNG, one output), then starts one worker process: ``python -m worker run``, the
whole path (job-id check, schema validation, metrics, a log line per job, outcome bookkeeping),
or the Node.js BullMQ 6.7 no-op worker of ``bench/node/noop.mjs``. The time comes from the jobs'
own stamps in Redis: the last ``finishedOn`` minus the first ``processedOn``, so neither process
start-up nor the enqueue counts for either side. Implementations are interleaved per round. At the
largest concurrency both sides also run as two processes on the one queue
(``PREVIEW_WORKER_PROCESSES=2`` against two Node.js workers), each at that concurrency.
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
#: ``worker``: one ``python -m worker run``; ``node``: one Node.js worker; ``-2p``: two processes
#: (``PREVIEW_WORKER_PROCESSES=2``, or two Node.js workers on the same queue).
IMPLS = ("worker", "node", "worker-2p", "node-2p")
TWO_PROCESS = ("worker-2p", "node-2p")


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
            (rss,) = _wait_completed(redis, queue, jobs, proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return rss


def run_nodes(redis: BenchRedis, queue: str, concurrency: int, jobs: int, processes: int) -> int:
    """Run ``processes`` Node.js BullMQ workers on ``queue`` until every job completed; returns the
    largest one's peak RSS (KiB). Each would stop after ``jobs`` of its own, so they are stopped."""
    argv = [*queue_suite.command("node"), redis.url, queue, str(concurrency), str(jobs), "throughput"]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
        for _ in range(processes)
    ]
    try:
        return max(_wait_completed(redis, queue, jobs, *procs))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(60)


def _wait_completed(redis: BenchRedis, queue: str, jobs: int, *procs: subprocess.Popen[str]) -> list[int]:
    """Wait until ``jobs`` jobs of ``queue`` completed; the peak RSS (KiB) of each of ``procs``."""
    key = f"{c.BULL_PREFIX}:{queue}:completed"
    deadline = time.monotonic() + 600
    rss = [0] * len(procs)
    while True:
        rss = [max(kb, _tree_rss_kb(proc.pid)) for kb, proc in zip(rss, procs, strict=True)]
        if redis.client.zcard(key) >= jobs:
            return rss
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {redis.client.zcard(key)} of {jobs} jobs completed")
        time.sleep(0.02)


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
    """Jobs/s per implementation and concurrency (two processes at the largest only), median of rounds.

    Ratios are same-run: ``worker/node`` one process each, ``worker-2p/node-2p`` two each."""
    top = max(concurrencies)
    plan = [
        (impl, conc) for conc in concurrencies for impl in IMPLS if impl not in TWO_PROCESS or conc == top
    ]
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
                elif impl == "node-2p":
                    peak = run_nodes(redis, queue, conc, jobs, 2)
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
        "worker/node": {cc: v / median["node"][cc] for cc, v in median["worker"].items()},
        "worker-2p/node-2p": {cc: v / median["node-2p"][cc] for cc, v in median["worker-2p"].items()},
    }
    return {"jobs": jobs, "rounds": rounds, "median": median, "ratios": ratios, "rss_peak_kb": rss}
