"""``python -m bench.pdf_cpu [--rounds N] [--corpus N]``: CPU time per PDF first page, the worker
against ``pdftoppm`` + libvips, one file at a time.

``python -m bench --only preview`` times both sides by the wall clock on two cores, which on a
machine shared with other work is a lottery (its PDF ratios moved by 0.5x between runs with no
code change). This measures what each side's files/s on two busy cores comes down to, its CPU
time per file, and is far less moved by other load: per PDF kind, the distinct files of the
bench corpus, ``--rounds`` times each (median), the worker's ``render`` (this process's CPU
time) with the scanned-page shortcut on and off (``worker.render.pdf.SCANS_FROM_JPEG``), and the
bench's ``pdftoppm`` reference (``pdftoppm``'s own CPU time from ``RUSAGE_CHILDREN``, then the
libvips renditions in this process on one libvips thread, like one render).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
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


def main(argv: list[str] | None = None) -> int:
    """Print, per PDF kind, CPU ms per file of each side and the worker's ratio over pdftoppm."""
    p = argparse.ArgumentParser(prog="python -m bench.pdf_cpu")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--corpus", type=int, default=8, help="the preview corpus's files per kind")
    args = p.parse_args(argv)
    from bench import vips_service
    from worker.render import pdf as render_pdf

    threads, shortcut = vips_service.pyvips.concurrency_get(), render_pdf.SCANS_FROM_JPEG
    vips_service.pyvips.concurrency_set(1)  # one thread, like one render process
    try:
        _measure(args.rounds, args.corpus)
    finally:
        vips_service.pyvips.concurrency_set(threads)
        render_pdf.SCANS_FROM_JPEG = shortcut
    return 0


def _measure(rounds: int, per_kind: int) -> None:
    from bench import vips_service
    from bench.preview_corpus import PDF_KINDS, corpus, distinct
    from worker.render import OutputSpec, RenderLimits, render
    from worker.render import pdf as render_pdf

    outputs = [OutputSpec(f"b{box}", "webp", box, box) for box in vips_service.BOXES]
    limits = RenderLimits(10**9, 2**40)
    root = corpus(per_kind)
    head = f"{'kind':12s} {'worker':>8s} {'PDFium only':>12s} {'pdftoppm':>9s}  ratio (PDFium only)"
    print(f"CPU ms a file: {head}")
    with tempfile.TemporaryDirectory(prefix="bench-pdf-cpu-") as tmp:
        for kind in PDF_KINDS:
            ms = {"worker": 0.0, "pdfium": 0.0, "pdftoppm": 0.0}
            for path in distinct(root, kind):
                data = path.read_bytes()
                for side, on in (("worker", True), ("pdfium", False)):
                    render_pdf.SCANS_FROM_JPEG = on
                    ms[side] += _cpu_ms(partial(render, data, outputs, limits), rounds)
                ms["pdftoppm"] += _cpu_ms(partial(vips_service.pdftoppm, path, Path(tmp)), rounds)
            n = len(distinct(root, kind))
            w, f, r = ms["worker"] / n, ms["pdfium"] / n, ms["pdftoppm"] / n
            print(f"               {kind:12s} {w:8.1f} {f:12.1f} {r:9.1f}  {r / w:5.2f}x ({r / f:.2f}x)")


if __name__ == "__main__":
    sys.exit(main())
