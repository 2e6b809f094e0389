"""``python -m bench.profile [impl|run] [--jobs N] [--concurrency C]``: where a drain spends its time.

Runs one ``bench.noop`` drain in-process under ``cProfile`` against a throwaway
redis-server and prints the top functions by own time and by cumulative time. ``run``
profiles the path users run instead: ``python -m worker run`` (under ``python -m cProfile``)
draining pre-filled dryRun jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import uuid

import uvloop

from bench.noop import IMPLS, drain
from bench.redis_kit import BenchRedis


def main(argv: list[str] | None = None) -> int:
    """Profile one drain and print the two top-20 tables."""
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("impl", nargs="?", default="fast", choices=(*IMPLS, "run"))
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--top", type=int, default=20)
    args = p.parse_args(argv)
    if args.impl == "run":
        return _profile_run(args.jobs, args.concurrency, args.top)
    with BenchRedis() as redis:
        queue = f"prof-{uuid.uuid4().hex[:8]}"
        redis.fill(queue, args.jobs)
        factory = asyncio.new_event_loop if args.impl in ("plain", "fast-asyncio") else uvloop.new_event_loop
        profiler = cProfile.Profile()
        with asyncio.Runner(loop_factory=factory) as runner:
            profiler.enable()
            out = runner.run(drain(args.impl, redis.url, queue, args.concurrency, args.jobs, "throughput"))
            profiler.disable()
    print(
        f"{args.impl}: {args.jobs} jobs at concurrency {args.concurrency}: "
        f"{args.jobs / out['seconds']:.0f} jobs/s"
    )
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats(key).print_stats(args.top)
        print(buf.getvalue())
    return 0


def _profile_run(jobs: int, concurrency: int, top: int) -> int:
    import os
    import signal
    import subprocess
    import tempfile
    from pathlib import Path

    from bench import run_suite

    with BenchRedis() as redis, tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        queue = f"prof-{uuid.uuid4().hex[:8]}"
        run_suite.fill(redis, queue, jobs)
        out = Path(tmp) / "run.prof"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_")},
            "REDIS_URL": redis.url, "PREVIEW_QUEUE_NAME": queue, "DATA_DIR": tmp,
            "PREVIEW_WORKER_CONCURRENCY": str(concurrency), "PREVIEW_METRICS_PORT": "0",
            "PREVIEW_KEEP_COMPLETED_COUNT": str(jobs), "PREVIEW_REDIS_BUDGET_BYTES": str(2**40),
        }  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "worker", "run"],
            env=env, cwd=run_suite.REPO, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            run_suite._wait_completed(redis, queue, jobs, proc)
            rate = run_suite.stamps_rate(redis, queue, jobs)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        print(f"python -m worker run: {jobs} dryRun jobs at concurrency {concurrency}: {rate:.0f} jobs/s")
        for key in ("tottime", "cumulative"):
            buf = io.StringIO()
            pstats.Stats(str(out), stream=buf).sort_stats(key).print_stats(top)
            print(buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
