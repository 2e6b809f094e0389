"""``python -m bench.pdf_cpu [--rounds N] [--corpus N]``: CPU time per PDF first page, the worker's
render process against ``pdftoppm`` + libvips, one file at a time.

``python -m bench --only preview`` times both sides by the wall clock on two cores, which on a
machine shared with other work is a lottery (its PDF ratios moved by 0.5x between runs with no
code change). This measures what each side's files/s on two busy cores comes down to, its CPU
time per file, and is far less moved by other load: per PDF kind, the distinct files of the
bench corpus, ``--rounds`` times each (median). The worker's side is one render process as
``python -m worker run`` starts it (``worker.render.sandbox``), its CPU time per job read from
``/proc/PID/schedstat`` (reading the request, rendering, writing the reply); the reference is
the bench's ``pdftoppm`` side (``pdftoppm``'s own CPU time from ``RUSAGE_CHILDREN``, then the
libvips renditions in this process on one libvips thread, like one render).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path


def _cpu_ms(run: Callable[[], object], rounds: int) -> float:
    """Median CPU time of ``run`` (this process's and its waited-for children's), in ms."""
    run()  # first-use costs are not a render's
    times = []
    for _ in range(rounds):
        before = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        run()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        children = after.ru_utime + after.ru_stime - before[1].ru_utime - before[1].ru_stime
        times.append(time.process_time() - before[0] + children)
    return statistics.median(times) * 1000


def on_cpu_ns(pid: int) -> int:
    """The CPU time process ``pid`` has had, in ns (``/proc/PID/schedstat``, the scheduler's own)."""
    with open(f"/proc/{pid}/schedstat", encoding="ascii") as stat:
        return int(stat.read().split()[0])


async def _process_cpu_ms(pid: int, run: Callable[[], Awaitable[object]], rounds: int) -> float:
    """Median CPU time process ``pid`` spends on ``run``, in ms."""
    await run()  # first-use costs are not a render's
    times = []
    for _ in range(rounds):
        before = on_cpu_ns(pid)
        await run()
        times.append(on_cpu_ns(pid) - before)
    return statistics.median(times) / 1e6


def main(argv: list[str] | None = None) -> int:
    """Print, per PDF kind, CPU ms per file of each side and the worker's ratio over pdftoppm."""
    p = argparse.ArgumentParser(prog="python -m bench.pdf_cpu")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--corpus", type=int, default=8, help="the preview corpus's files per kind")
    args = p.parse_args(argv)
    from bench import vips_service

    threads = vips_service.pyvips.concurrency_get()
    vips_service.pyvips.concurrency_set(1)  # one thread, like one render process
    try:
        asyncio.run(_measure(args.rounds, args.corpus))
    finally:
        vips_service.pyvips.concurrency_set(threads)
    return 0


async def _measure(rounds: int, per_kind: int) -> None:
    from bench import vips_service
    from bench.preview_corpus import PDF_KINDS, corpus, distinct
    from worker import constants as c
    from worker.render import OutputSpec
    from worker.render.sandbox import RenderPool

    outputs = [OutputSpec(f"b{box}", "webp", box, box) for box in vips_service.BOXES]
    root = corpus(per_kind)
    pool = RenderPool(1, c.RENDER_MEMORY_BYTES_DEFAULT, c.RENDER_TIMEOUT_SECONDS_DEFAULT)
    print(f"CPU ms a file: {'kind':12s} {'worker':>8s} {'pdftoppm':>9s}  ratio")
    try:
        await pool.warm()
        [pid] = pool.pids()
        with tempfile.TemporaryDirectory(prefix="bench-pdf-cpu-") as tmp:
            for kind in PDF_KINDS:
                paths = distinct(root, kind)
                worker = reference = 0.0
                for path in paths:
                    data = path.read_bytes()

                    async def job(data: bytes = data) -> object:
                        return await pool.render(data, outputs, 10**9)

                    worker += await _process_cpu_ms(pid, job, rounds)
                    reference += _cpu_ms(lambda path=path: vips_service.pdftoppm(path, Path(tmp)), rounds)
                if pool.pids() != [pid]:
                    raise RuntimeError("the render process ended during the measurement")
                w, r = worker / len(paths), reference / len(paths)
                print(f"               {kind:12s} {w:8.1f} {r:9.1f}  {r / w:5.2f}x")
    finally:
        await pool.close()


if __name__ == "__main__":
    sys.exit(main())
