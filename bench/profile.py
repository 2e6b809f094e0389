"""``python -m bench.profile [impl|run|render] [--jobs N] [--concurrency C]``: where the time goes.

Runs one ``bench.noop`` drain in-process under ``cProfile`` against a throwaway
redis-server and prints the top functions by own time and by cumulative time. ``run``
profiles the path users run instead: ``python -m worker run`` (under ``python -m cProfile``)
draining pre-filled dryRun jobs. ``render`` profiles the renderer on the preview corpus
(``bench.preview_corpus``, the distinct files of each kind, ``--rounds`` times each, the three
WebP boxes of ``python -m bench --only preview``; ``--kinds`` narrows it) in this one process and
prints, per kind, the milliseconds per file spent decoding, resizing and encoding, and inside
the encoding in libwebp's ``WebPEncode`` itself: the encoder's floor. For the raster kinds it
then times, without the profiler and alternating round by round, the CPU milliseconds per file
of the same renders and of the pyvips service's (``bench.vips_service.raster``, one libvips
thread), and their ratio: CPU time, which other load on the machine moves far less than the
wall-clock files/s of ``python -m bench --only preview``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import uvloop

from bench.noop import IMPLS, drain
from bench.redis_kit import BenchRedis


def main(argv: list[str] | None = None) -> int:
    """Profile one drain and print the two top-20 tables."""
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("impl", nargs="?", default="fast", choices=(*IMPLS, "run", "render"))
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3, help="render: renders of each distinct file")
    p.add_argument("--corpus", type=int, default=8, help="render: the preview corpus's files per kind")
    p.add_argument("--kinds", help="render: comma-separated corpus kinds (default all)")
    args = p.parse_args(argv)
    if args.impl == "render":
        from bench.preview_corpus import KINDS, parse_kinds

        try:
            kinds = parse_kinds(args.kinds) if args.kinds else KINDS
        except ValueError as err:
            p.error(str(err))
        return _profile_render(args.rounds, args.corpus, kinds)
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


#: The renderer's stages, by (module file name, function name): their cumulative time is the stage's.
STAGES = {
    "decode": [("raster.py", "decode"), ("pdf.py", "_rasterise_first_page")],
    "resize": [("raster.py", "resize_all")],
    "encode": [("raster.py", "encode")],
    "WebPEncode": [("~", "<built-in method PIL._webp.WebPEncode>")],
}


def _profile_render(rounds: int, per_kind: int, kinds: tuple[str, ...]) -> int:
    """Per kind: ms per file in each of the renderer's stages, the encoder's own share, and the CPU
    ms per file of the worker's renders against the pyvips service's (raster kinds)."""
    os.environ.setdefault("VIPS_CONCURRENCY", "1")  # read when pyvips loads libvips, just below
    from bench.preview_corpus import PDF_KINDS, corpus, distinct
    from bench.vips_service import BOXES, raster
    from worker.render import OutputSpec, RenderLimits, render

    outputs = [OutputSpec(f"b{box}", "webp", box, box) for box in BOXES]
    limits = RenderLimits(10**9, 2**40)
    root = corpus(per_kind)
    header = " ".join(f"{stage:>10s}" for stage in STAGES)
    print(f"{'kind':15s} {'ms/file':>8s} {header}  encoder share  {'cpu/file':>8s} {'pyvips':>8s} x-pyvips")
    for kind in kinds:
        sources = [path.read_bytes() for path in distinct(root, kind)]
        render(sources[0], outputs, limits)  # first-use costs (codec tables, imports) are not a render's
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(rounds):
            for data in sources:
                render(data, outputs, limits)
        profiler.disable()
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        renders = rounds * len(sources)
        total = sum(tt for (_c, _n, tt, _ct, _callers) in stats.values()) * 1000 / renders
        ms = {
            stage: sum(
                ct for (path, _line, name), (_c, _n, _tt, ct, _callers) in stats.items()
                if any(path.endswith(f) and name == fn for f, fn in where)
            ) * 1000 / renders
            for stage, where in STAGES.items()
        }  # fmt: skip
        share = ms["WebPEncode"] / total if total else 0.0
        cells = " ".join(f"{ms[stage]:10.1f}" for stage in STAGES)
        if kind in PDF_KINDS:  # pyvips-binary has no PDF loader: `python -m bench.pdf_cpu` compares pdftoppm
            cpu = f"{'-':>8s} {'-':>8s} {'-':>8s}"
        else:
            with tempfile.TemporaryDirectory(prefix="bench-profile-") as out:
                paths = distinct(root, kind)
                mine, theirs = cpu_ms_per_file(
                    [functools.partial(render, data, outputs, limits) for data in sources],
                    [functools.partial(raster, path, Path(out)) for path in paths],
                    rounds,
                )
            cpu = f"{mine:8.1f} {theirs:8.1f} {theirs / mine:7.2f}x"
        print(f"{kind:15s} {total:8.1f} {cells}  {share:6.0%}  {cpu}")
    return 0


def cpu_ms_per_file(
    ours: list[Callable[[], object]], theirs: list[Callable[[], object]], rounds: int
) -> tuple[float, float]:
    """Median over ``rounds`` of the CPU ms per file of each side, the two sides alternating per round.

    Each list renders one file per call; each side renders its first file once before timing.
    """
    ours[0]()
    theirs[0]()
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        for calls, times in ((ours, a), (theirs, b)):
            start = time.process_time()
            for call in calls:
                call()
            times.append((time.process_time() - start) * 1000 / len(calls))
    return statistics.median(a), statistics.median(b)


if __name__ == "__main__":
    sys.exit(main())
