"""No-op throughput and enqueue-to-start latency: this worker against Node.js BullMQ 6.7.

Every measurement is a separate worker process (``bench.noop`` or ``node/noop.mjs``)
against the same ``redis-server``; implementations are interleaved within each round
(and the order rotates per round) so that load from other work on the machine hits
them alike. Ratios are medians from the same run.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.redis_kit import BenchRedis

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"


def command(impl: str) -> list[str]:
    """The command line of one worker implementation (``node`` or a ``bench.noop`` impl)."""
    if impl == "node":
        if not (NODE_DIR / "node_modules" / "bullmq").is_dir():
            raise SystemExit("bench/node/node_modules is missing: run `npm ci --prefix bench/node`")
        return ["node", str(NODE_DIR / "noop.mjs")]
    return [sys.executable, "-m", "bench.noop", impl]


def run_worker(
    impl: str, url: str, queue: str, concurrency: int, jobs: int, mode: str, during: Any = None
) -> dict[str, Any]:
    """Start one worker process, wait for its ``ready``, call ``during()``, return its JSON line."""
    proc = subprocess.Popen(
        [*command(impl), url, queue, str(concurrency), str(jobs), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"{impl} worker did not start: {line}{proc.stderr.read()}")
    if during is not None:
        during()
    out, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} worker failed ({proc.returncode}): {err[-2000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def throughput(
    redis: BenchRedis, impls: list[str], concurrencies: list[int], jobs: int, rounds: int
) -> dict[str, Any]:
    """Jobs/s draining a pre-filled queue, per implementation and concurrency, over ``rounds``."""
    samples: dict[str, dict[int, list[float]]] = {i: {c: [] for c in concurrencies} for i in impls}
    rss: dict[str, int] = {}
    for r in range(rounds):
        for conc in concurrencies:
            order = impls[r % len(impls) :] + impls[: r % len(impls)]
            for impl in order:
                queue = f"noop-{uuid.uuid4().hex[:8]}"
                redis.fill(queue, jobs)
                out = run_worker(impl, redis.url, queue, conc, jobs, "throughput")
                samples[impl][conc].append(jobs / out["seconds"])
                rss[impl] = max(rss.get(impl, 0), out["rss_peak_kb"])
                redis.client.flushall()
            print(
                f"  round {r + 1}/{rounds} c={conc}: "
                + ", ".join(f"{i} {samples[i][conc][-1]:.0f}/s" for i in impls),
                file=sys.stderr,
            )
    medians = {i: {c: statistics.median(v) for c, v in per.items()} for i, per in samples.items()}
    return {
        "jobs": jobs,
        "rounds": rounds,
        "samples": _keys(samples),
        "median": _keys(medians),
        "rss_peak_kb": rss,
    }


def _keys(d: dict[str, dict[int, Any]]) -> dict[str, dict[str, Any]]:
    return {k: {str(c): v for c, v in per.items()} for k, per in d.items()}


def produce_steady(url: str, queue: str, jobs: int, rate: float) -> None:
    """Add ``jobs`` jobs at ``rate`` per second, each carrying its enqueue time ``t`` (ms)."""
    from bullmq import Queue

    from worker import constants as c

    async def go() -> None:
        q = Queue(queue, {"connection": url, "prefix": c.BULL_PREFIX})
        start = time.monotonic()
        try:
            for i in range(jobs):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await q.add("noop", {"t": time.time() * 1000})
        finally:
            await q.close()

    asyncio.run(go())


def latency(
    redis: BenchRedis, impls: list[str], concurrency: int, jobs: int, rate: float, rounds: int
) -> dict[str, Any]:
    """Enqueue-to-start latency percentiles at a steady rate, per implementation."""
    p50: dict[str, list[float]] = {i: [] for i in impls}
    p99: dict[str, list[float]] = {i: [] for i in impls}
    for r in range(rounds):
        for impl in impls[r % len(impls) :] + impls[: r % len(impls)]:
            queue = f"lat-{uuid.uuid4().hex[:8]}"
            out = run_worker(
                impl,
                redis.url,
                queue,
                concurrency,
                jobs,
                "latency",
                during=lambda q=queue: produce_steady(redis.url, q, jobs, rate),
            )
            lat = sorted(out["latencies_ms"])
            p50[impl].append(_pct(lat, 50))
            p99[impl].append(_pct(lat, 99))
            redis.client.flushall()
        print(
            f"  latency round {r + 1}/{rounds}: "
            + ", ".join(f"{i} p50 {p50[i][-1]:.1f} ms p99 {p99[i][-1]:.1f} ms" for i in impls),
            file=sys.stderr,
        )
    return {
        "jobs": jobs,
        "rate": rate,
        "concurrency": concurrency,
        "rounds": rounds,
        "p50_ms": {i: statistics.median(v) for i, v in p50.items()},
        "p99_ms": {i: statistics.median(v) for i, v in p99.items()},
    }


def _pct(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        raise RuntimeError("no latency samples")
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]
