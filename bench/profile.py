"""``python -m bench.profile [impl] [--jobs N] [--concurrency C]``: where a no-op drain spends its time.

Runs one ``bench.noop`` drain in-process under ``cProfile`` against a throwaway
redis-server and prints the top functions by own time and by cumulative time.
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
    p.add_argument("impl", nargs="?", default="fast", choices=IMPLS)
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--top", type=int, default=20)
    args = p.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
