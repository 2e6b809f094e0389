"""Is the hand-written RESP client worth keeping (#18)? Lua calls per second from 50 concurrent tasks.

``worker/queue/pipe.py`` exists for one thing: many coroutines' script calls sharing one
auto-pipelined socket, as ioredis does for Node.js BullMQ. This suite gives well-kept libraries
the same job and the same Redis: ``EVALSHA`` of a small script (an ``INCR`` and an ``HSET``, like
the keys BullMQ's scripts touch) from ``concurrency`` tasks, ``calls`` in all, each client in its
own fresh process and event loop, interleaved over rounds.

- ``pipe``: ``worker.queue.pipe.PipelinedConnection`` on uvloop (what the worker uses);
- ``redis-py``: redis-py's asyncio client and its connection pool on uvloop (bullmq's own path);
- ``glide``: valkey-glide's ``GlideClient``, one multiplexed connection driven from Rust;
- ``coredis``: coredis's ``Redis`` with its default pool.

Run alone: ``python -m bench.client_suite URL CLIENT CONCURRENCY CALLS`` prints calls/s.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from bench.redis_kit import BenchRedis

CLIENTS = ("pipe", "redis-py", "glide", "coredis")
SCRIPT = "local v = redis.call('INCR', KEYS[1]); redis.call('HSET', KEYS[2], 'n', v); return v"


async def _drive(call: Callable[[int], Awaitable[Any]], concurrency: int, calls: int) -> float:
    per_task = calls // concurrency

    async def task(i: int) -> None:
        for _ in range(per_task):
            await call(i)

    await call(0)  # connected and the script loaded before the clock starts
    started = time.perf_counter()
    await asyncio.gather(*(task(i) for i in range(concurrency)))
    return per_task * concurrency / (time.perf_counter() - started)


async def _pipe(url: str, concurrency: int, calls: int) -> float:
    import redis.asyncio as aioredis

    from worker.queue.pipe import PipelinedConnection

    sha = await aioredis.from_url(url).script_load(SCRIPT)
    pipe = PipelinedConnection(url)
    try:
        return await _drive(lambda i: pipe.execute("EVALSHA", sha, 2, f"c:{i}", f"h:{i}"), concurrency, calls)
    finally:
        await pipe.close()


async def _redis_py(url: str, concurrency: int, calls: int) -> float:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, decode_responses=True, max_connections=concurrency)
    sha = await client.script_load(SCRIPT)
    try:
        return await _drive(lambda i: client.evalsha(sha, 2, f"c:{i}", f"h:{i}"), concurrency, calls)
    finally:
        await client.aclose()


async def _glide(url: str, concurrency: int, calls: int) -> float:
    from glide import GlideClient, GlideClientConfiguration, NodeAddress, Script

    parts = urlsplit(url)
    config = GlideClientConfiguration([NodeAddress(parts.hostname or "127.0.0.1", parts.port or 6379)])
    client = await GlideClient.create(config)
    script = Script(SCRIPT)
    try:
        return await _drive(
            lambda i: client.invoke_script(script, keys=[f"c:{i}", f"h:{i}"]), concurrency, calls
        )
    finally:
        await client.close()


async def _coredis(url: str, concurrency: int, calls: int) -> float:
    import coredis

    parts = urlsplit(url)
    client: Any = coredis.Redis(parts.hostname, parts.port or 6379, decode_responses=True)
    async with client:
        sha = await client.script_load(SCRIPT)
        return await _drive(lambda i: client.evalsha(sha, [f"c:{i}", f"h:{i}"]), concurrency, calls)


def measure(url: str, client: str, concurrency: int, calls: int) -> float:
    """Calls/s of one client in this process."""
    import uvloop

    run = {"pipe": _pipe, "redis-py": _redis_py, "glide": _glide, "coredis": _coredis}[client]
    loop = uvloop.new_event_loop if client in ("pipe", "redis-py") else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=loop) as runner:
        return runner.run(run(url, concurrency, calls))


def compare(redis: BenchRedis, concurrency: int, calls: int, rounds: int) -> dict[str, Any]:
    """Median calls/s per client over interleaved rounds, each run in a fresh process."""
    samples: dict[str, list[float]] = {c: [] for c in CLIENTS}
    for r in range(rounds):
        for client in CLIENTS[r % len(CLIENTS) :] + CLIENTS[: r % len(CLIENTS)]:
            out = subprocess.run(
                [sys.executable, "-m", "bench.client_suite", redis.url, client, str(concurrency), str(calls)],
                capture_output=True, text=True, timeout=600, check=True,
            )  # fmt: skip
            samples[client].append(float(out.stdout.strip().splitlines()[-1]))
            redis.client.flushall()
        print(
            f"  client round {r + 1}/{rounds}: " + ", ".join(f"{c} {samples[c][-1]:.0f}/s" for c in CLIENTS),
            file=sys.stderr,
        )
    median = {c: statistics.median(v) for c, v in samples.items()}
    return {
        "concurrency": concurrency,
        "calls": calls,
        "rounds": rounds,
        "median": median,
        "ratios": {f"{c}/pipe": median[c] / median["pipe"] for c in CLIENTS if c != "pipe"},
    }


if __name__ == "__main__":
    url, client, concurrency, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(f"{measure(url, client, concurrency, calls):.1f}")
