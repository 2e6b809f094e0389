"""Run the preview references on one kind's files, two processes on two cores, timed alike.

``vipsthumbnail`` (as before issue 34: one process per half of the files, three passes, one per
box), the pyvips service and ``pdftoppm`` + libvips (``bench.vips_service``). Each writes
``OUT/<stem>_<box>.webp``. Peak RSS is read per process: ``bench.peak_rss`` reports the largest
of a ``vipsthumbnail`` pipeline's runs, the service its own ``VmHWM``; ``pdftoppm``'s is taken
apart, one run per source (:func:`peak_rss_kb`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.vips_service import BOXES, WEBP

REPO = Path(__file__).resolve().parent.parent
#: The same settings as :data:`bench.vips_service.WEBP`, in vipsthumbnail's option syntax (8.14
#: spells ``keep=none`` as ``strip``); ``>`` after the size: never upscale, like the worker.
VIPSTHUMBNAIL_WEBP = f"Q={WEBP['Q']},effort={WEBP['effort']},alpha_q={WEBP['alpha_q']},strip"


def run_vipsthumbnail(paths: list[Path], out: Path, procs: int = 2) -> dict[str, Any]:
    """Time ``procs`` vipsthumbnail pipelines over ``paths``; each writes every box."""
    binary = shutil.which("vipsthumbnail")
    if binary is None:
        raise SystemExit("vipsthumbnail is not installed (deps/apt-bench.txt: libvips-tools)")
    script = " && ".join(
        f'"{binary}" --size \'{b}x{b}>\' -o "{out}/%s_{b}.webp[{VIPSTHUMBNAIL_WEBP}]" "$@"' for b in BOXES
    )
    shares = [paths[i::procs] for i in range(procs) if paths[i::procs]]
    argv = [sys.executable, "-m", "bench.peak_rss", "sh", "-c", script, "vips"]
    result = _timed("vipsthumbnail", [([*argv, *map(str, share)], "go\n") for share in shares], out, paths)
    return result


def run_service(mode: str, paths: list[Path], out: Path, procs: int = 2) -> dict[str, Any]:
    """Time ``procs`` ``bench.vips_service`` processes (``raster`` or ``pdftoppm``) over ``paths``.

    The clock starts once every process has imported pyvips and said ``ready``, as the worker's
    starts once it is ready: a service is long-lived, its start-up is not per file.
    """
    shares = [paths[i::procs] for i in range(procs) if paths[i::procs]]
    argv = [sys.executable, "-m", "bench.vips_service", mode, str(out)]
    return _timed(
        f"bench.vips_service {mode}",
        [(argv, "".join(f"{s}\n" for s in share)) for share in shares],
        out,
        paths,
    )


def peak_rss_kb(argv: list[str]) -> int:
    """The peak RSS (KiB) of one run of ``argv`` (through ``bench.peak_rss``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.peak_rss", *argv],
        cwd=REPO,
        input="go\n",
        capture_output=True,
        text=True,
    )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if proc.returncode or report["status"]:
        raise RuntimeError(f"{argv[0]} failed: {proc.stderr[-500:]}")
    return int(report["rss_peak_kb"])


def _timed(what: str, commands: list[tuple[list[str], str]], out: Path, paths: list[Path]) -> dict[str, Any]:
    """Start every command, wait for their ``ready``, then time them from their input to their exit.

    Each prints ``ready``, reads its input to EOF and ends with one JSON line holding its peak
    RSS (``rss_peak_kb``) and, when it ran a command, that command's ``status``.
    """
    running = [
        subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for argv, _ in commands
    ]
    try:
        for p in running:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{what} did not start (status {p.wait()})")
        started = time.perf_counter()
        for p, (_, text) in zip(running, commands, strict=True):
            assert p.stdin is not None
            p.stdin.write(text)
            p.stdin.close()
        reports = [p.stdout.read() for p in running if p.stdout is not None]
        codes = [p.wait() for p in running]
        seconds = time.perf_counter() - started
    finally:
        for p in running:
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
    peaks = [json.loads(r.strip().splitlines()[-1]) if r.strip() else {} for r in reports]
    codes += [int(p.get("status", 0)) for p in peaks]
    missing = [
        f"{p.stem}_{b}.webp" for p in paths for b in BOXES if not (out / f"{p.stem}_{b}.webp").exists()
    ]
    if any(codes) or missing:
        raise RuntimeError(f"{what}: exit codes {codes}, {len(missing)} renditions missing")
    return {
        "seconds": seconds,
        "files": len(paths),
        "files_per_s": len(paths) / seconds,
        "rss_peak_kb": [int(p["rss_peak_kb"]) for p in peaks],
    }
