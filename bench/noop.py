"""The Python side of the no-op benchmark, run as its own process (like ``node/noop.mjs``).

``python -m bench.noop <impl> <redisUrl> <queue> <concurrency> <jobs> <throughput|latency>``
where ``impl`` is ``plain`` (``bullmq.Worker`` as the library builds it, default asyncio
loop), ``plain-uvloop``, or ``fast`` (``worker.queue.fastpath.FastWorker`` on uvloop, as
``python -m worker run`` uses it) with one lever switched off: ``fast-nofetch``,
``fast-nopool``, ``fast-nohiredis`` (redis-py's Python command packing), ``fast-nopipe``
(``moveToFinished`` and ``moveToActive`` on the pooled client, not the pipelined
connection), ``fast-asyncio``.
Prints one JSON line: seconds, jobs, rss_peak_kb (and latencies_ms).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import uvloop
from bullmq import Worker

from worker import constants as c
from worker.queue.fastpath import FastWorker

TIMEOUT_SECONDS = float(os.environ.get("BENCH_NOOP_TIMEOUT", "300"))
IMPLS = (
    "plain",
    "plain-uvloop",
    "fast-nofetch",
    "fast-nopool",
    "fast-nohiredis",
    "fast-nopipe",
    "fast-asyncio",
    "fast",
)


def peak_rss_kb() -> int:
    """This process's peak resident set size (VmHWM) in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def dump(task: asyncio.Task[Any]) -> None:
    """Print a task and its whole chain of awaited coroutines (``print_stack`` shows only the top)."""
    print(f"task {task!r}", file=sys.stderr)
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            print(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}", file=sys.stderr)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    print(file=sys.stderr, flush=True)


async def drain(impl: str, url: str, queue: str, concurrency: int, total: int, mode: str) -> dict[str, Any]:
    """Run one worker until ``total`` jobs completed; returns the timing."""
    latencies: list[float] = []
    done = asyncio.Event()
    count = 0

    async def process(job: Any, token: str) -> None:
        if mode == "latency":
            latencies.append(time.time() * 1000 - job.data["t"])

    def completed(*_: Any) -> None:
        nonlocal count
        count += 1
        if count == total:
            done.set()

    opts = {
        "connection": url,
        "prefix": c.BULL_PREFIX,
        "concurrency": concurrency,
        "autorun": False,
        "drainDelay": 5,
    }
    if impl.startswith("plain"):
        worker = Worker(queue, process, opts)
    else:
        worker = FastWorker(
            queue,
            process,
            opts,
            fetch_next=impl != "fast-nofetch",
            pooled=impl != "fast-nopool",
            hiredis_pack=impl != "fast-nohiredis",
            pipelined=impl != "fast-nopipe",
        )
    worker.on("completed", completed)
    worker.on("failed", lambda job, err, *_: print(f"failed {job.id}: {err!r}", file=sys.stderr, flush=True))
    worker.on("error", lambda err, *_: print(f"error: {err!r}", file=sys.stderr, flush=True))
    await worker.client.ping()
    print("ready", file=sys.stderr, flush=True)
    started = time.perf_counter()
    runner = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(done.wait(), TIMEOUT_SECONDS)
    except TimeoutError:
        for task in asyncio.all_tasks():
            dump(task)
        raise SystemExit(f"only {count} of {total} jobs completed within {TIMEOUT_SECONDS} s") from None
    seconds = time.perf_counter() - started
    closing = asyncio.ensure_future(asyncio.gather(worker.close(), runner))
    finished, _ = await asyncio.wait({closing}, timeout=30)
    if not finished:  # a bug (issue 7 had one: the blocking-timeout race); dump what diagnoses it
        for task in asyncio.all_tasks():
            dump(task)
        print(f"worker close did not finish ({len(worker.processing)} tasks)", file=sys.stderr, flush=True)
        await _dump_worker(worker, url)
        os._exit(3)
    out: dict[str, Any] = {"seconds": seconds, "jobs": total, "rss_peak_kb": peak_rss_kb()}
    if mode == "latency":
        out["latencies_ms"] = latencies
    return out


async def _dump_worker(worker: Any, url: str) -> None:
    """The worker's blocking-wait state and the server's view of its clients (hang diagnosis)."""
    import redis.asyncio as aioredis

    waiting = worker.waiting
    info = {
        "drained": worker.drained,
        "blockUntil": worker.blockUntil,
        "closing": worker.closing,
        "waiting": repr(waiting),
        "waiting_cancelling": waiting.cancelling() if waiting else None,
    }
    print(json.dumps(info, default=str), file=sys.stderr)
    client = aioredis.Redis.from_url(url)
    for line in await client.client_list():
        print(line, file=sys.stderr)
    await client.aclose()
    sys.stderr.flush()


def main(argv: list[str]) -> int:
    """Entry point; see the module docstring for the arguments."""
    impl, url, queue, concurrency, total, mode = argv
    if impl not in IMPLS or mode not in ("throughput", "latency"):
        print(
            f"usage: python -m bench.noop {{{'|'.join(IMPLS)}}} URL QUEUE CONC JOBS throughput|latency",
            file=sys.stderr,
        )
        return 2
    factory = asyncio.new_event_loop if impl in ("plain", "fast-asyncio") else uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        out = runner.run(drain(impl, url, queue, int(concurrency), int(total), mode))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
