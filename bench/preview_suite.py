"""Preview throughput per kind of upload: the real worker against the references, at equal output.

The worker runs as a stack runs it in a 2-CPU pod: one ``python -m worker run`` (concurrency 4,
two render processes) consuming real preview jobs with ``path`` sources. The references get the
same two cores: the pyvips service (``bench.vips_service raster``) and ``vipsthumbnail`` on the
raster kinds, ``pdftoppm`` + libvips on the PDF kinds, each as two processes splitting the files.
Every side writes three WebP renditions per file (boxes of 1280, 640 and 320 px, ``contain``,
quality 80, method 4). Per round, each kind runs every implementation in turn (the order rotates);
the report gives medians, same-run ratios and, from the first round's files, the quality of every
rendition (``bench.preview_quality``): a ratio counts only when the output is as good.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench import preview_quality
from bench.preview_corpus import KINDS, PDF_KINDS, corpus, distinct, files
from bench.preview_refs import REPO, peak_rss_kb, run_service, run_vipsthumbnail
from bench.redis_kit import BenchRedis
from bench.vips_service import BOXES, WEBP
from worker import constants as c

__all__ = ["compare", "corpus"]
RASTER_REFS = ("pyvips", "vipsthumbnail")
PDF_REFS = ("pdftoppm",)
#: Issue 34's targets: the worker's files/s over each reference's, same run, at equal output.
TARGETS = {"pyvips": 1.3, "vipsthumbnail": 1.5, "pdftoppm": 1.2}
#: What each side's encoder is told (the worker: Pillow; the references: libvips).
ENCODER = {
    "format": "webp",
    "worker": "Pillow WebP quality=80, method 4 (Pillow's default), lossy, alpha at full quality",
    "references": "libvips webpsave " + ", ".join(f"{k}={v}" for k, v in WEBP.items()),
}


def references(kind: str) -> tuple[str, ...]:
    """The references ``kind`` is compared with."""
    return PDF_REFS if kind in PDF_KINDS else RASTER_REFS


class WorkerRun:
    """One ``python -m worker run`` on a fresh queue, draining one batch of jobs at a time."""

    def __init__(self, root: Path, redis: BenchRedis, data_dir: Path, concurrency: int = 4, renders: int = 2):
        self.root, self.redis, self.data_dir = root, redis, data_dir
        self.queue = f"preview-{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            c.ENV_REDIS_URL: redis.url,
            c.ENV_QUEUE_NAME: self.queue,
            c.ENV_DATA_DIR: str(data_dir),
            c.ENV_INPUT_ROOT: str(root),
            c.ENV_CONCURRENCY: str(concurrency),
            c.ENV_RENDER_PROCESSES: str(renders),
            c.ENV_METRICS_PORT: "0",
            c.ENV_MAX_SOURCE_BYTES: str(200 * 2**20),
        }
        self.settings = {"concurrency": concurrency, "render_processes": renders}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.render_rss: dict[int, int] = {}  # peak RSS per render process seen
        self.reader = _wait_ready(self.proc)

    def drain(self, kind: str, paths: list[Path]) -> dict[str, Any]:
        """Enqueue ``paths`` (one job each) and time them until the last is completed."""
        done_before = int(self.redis.client.zcard(f"bull:{self.queue}:completed"))
        started = time.perf_counter()
        _enqueue(self.redis.url, self.queue, [(f"{kind}.{p.stem}", f"{kind}/{p.name}") for p in paths])
        _wait_finished(self.redis, self.queue, done_before + len(paths))
        seconds = time.perf_counter() - started
        for pid in _children(self.proc.pid):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # ended meanwhile
                self.render_rss[pid] = max(self.render_rss.get(pid, 0), _peak_rss_kb(pid))
        return {"seconds": seconds, "files": len(paths), "files_per_s": len(paths) / seconds}

    def outputs(self, kind: str, out: Path) -> None:
        """Link this run's renditions of ``kind`` into ``out`` as ``<stem>_<box>.webp``."""
        for job in self.data_dir.glob(f"{kind}.*"):
            for box in BOXES:
                (out / f"{job.name.split('.', 1)[1]}_{box}.webp").symlink_to(job / f"w{box}.webp")

    def close(self) -> dict[str, Any]:
        """Stop the worker; its peak RSS and its render processes'."""
        own = _peak_rss_kb(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.reader.join(10)  # at the end of the worker's output
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return {"rss_peak_kb": own, "render_rss_peak_kb": sorted(self.render_rss.values())}


def compare(root: Path, redis: BenchRedis, rounds: int, kinds: tuple[str, ...] = KINDS) -> dict[str, Any]:
    """Every kind through every implementation, ``rounds`` times; medians, quality and ratios."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {k: {} for k in kinds}
    quality: dict[str, Any] = {}
    memory: list[dict[str, Any]] = []
    pdftoppm_rss: dict[str, int] = {}
    for n in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
            worker = WorkerRun(root, redis, Path(tmp) / "data")
            try:
                for k, kind in enumerate(kinds):
                    impls = ("worker", *references(kind))
                    turn = (n + k) % len(impls)  # rotate who goes first
                    outs = {i: Path(tmp) / kind / i for i in impls}
                    for impl in impls[turn:] + impls[:turn]:
                        outs[impl].mkdir(parents=True)
                        runs[kind].setdefault(impl, []).append(_run(impl, worker, root, kind, outs[impl]))
                    if n == 0:
                        worker.outputs(kind, outs["worker"])
                        quality[kind] = preview_quality.measure(kind, distinct(root, kind), outs)
                        if kind in PDF_KINDS:
                            pdftoppm_rss[kind] = max(map(_pdftoppm_peak_kb, distinct(root, kind)))
            finally:
                memory.append(worker.close())
    return {
        "rounds": rounds,
        "boxes": list(BOXES),
        "encoder": ENCODER,
        "worker": {**worker.settings, "rss_peak_kb": max(m["rss_peak_kb"] for m in memory),
                   "render_rss_peak_kb": max(max(m["render_rss_peak_kb"], default=0) for m in memory)},
        "kinds": {kind: _summary(kind, runs[kind], quality[kind], pdftoppm_rss.get(kind)) for kind in kinds},
    }  # fmt: skip


def _run(impl: str, worker: WorkerRun, root: Path, kind: str, out: Path) -> dict[str, Any]:
    paths = files(root, kind)
    if impl == "worker":
        return worker.drain(kind, paths)
    if impl == "vipsthumbnail":
        return run_vipsthumbnail(paths, out)
    return run_service("raster" if impl == "pyvips" else "pdftoppm", paths, out)


def _pdftoppm_peak_kb(path: Path) -> int:
    """pdftoppm's own peak RSS rendering page 1 of ``path`` at the largest box."""
    argv = ["pdftoppm", "-f", "1", "-l", "1", "-singlefile", "-scale-to", str(BOXES[0]), str(path)]
    return peak_rss_kb(argv)


def _summary(
    kind: str, runs: dict[str, list[dict[str, Any]]], quality: dict[str, Any], pdftoppm_kb: int | None
) -> dict[str, Any]:
    median = {impl: statistics.median(r["files_per_s"] for r in rs) for impl, rs in runs.items()}
    ratios = {}
    for ref in references(kind):
        per_round = [
            w["files_per_s"] / r["files_per_s"] for w, r in zip(runs["worker"], runs[ref], strict=True)
        ]
        verdict = preview_quality.verdict(quality, "worker", ref)
        ratio = median["worker"] / median[ref]
        ratios[f"worker/{ref}"] = {
            "ratio": ratio,
            "per_round": per_round,
            **verdict,
            "target": TARGETS[ref],
            "met": verdict["comparable"] and ratio >= TARGETS[ref],
        }
    rss = {impl: max(max(r["rss_peak_kb"]) for r in rs) for impl, rs in runs.items() if impl != "worker"}
    if pdftoppm_kb is not None:
        rss["pdftoppm (its own process)"] = pdftoppm_kb
    return {
        "files": runs["worker"][0]["files"],
        "files_per_s": median,
        "runs": runs,
        "ratios": ratios,
        "quality": quality,
        "reference_rss_peak_kb": rss,
    }


def _wait_ready(proc: subprocess.Popen[str]) -> threading.Thread:
    """Read the worker's log until it is ready; then a thread reads the rest (returned)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if "worker ready" in line:
            return _drain_stdout(proc)  # keep reading, so the worker never blocks on a full pipe
    raise RuntimeError(f"worker exited before ready (status {proc.wait()})")


def _drain_stdout(proc: subprocess.Popen[str]) -> threading.Thread:
    assert proc.stdout is not None
    stream = proc.stdout
    reader = threading.Thread(target=lambda: [None for _ in stream], daemon=True)
    reader.start()
    return reader


def _enqueue(url: str, queue: str, jobs: list[tuple[str, str]]) -> None:
    from bullmq import Queue

    outputs = [
        {"name": f"w{b}", "format": "webp", "width": b, "height": b, "fit": "contain", "quality": WEBP["Q"]}
        for b in BOXES
    ]

    async def go() -> None:
        q = Queue(queue, {"connection": url, "prefix": c.BULL_PREFIX})
        try:
            await q.addBulk(
                [
                    {
                        "name": "preview",
                        "data": {"jobId": job_id, "source": {"path": path}, "outputs": outputs},
                        "opts": {"jobId": job_id},
                    }
                    for job_id, path in jobs
                ]
            )
        finally:
            await q.close()

    asyncio.run(go())


def _wait_finished(redis: BenchRedis, queue: str, total: int, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = redis.client.zcard(f"bull:{queue}:completed")
        failed = redis.client.zcard(f"bull:{queue}:failed")
        if failed:
            first = redis.client.zrange(f"bull:{queue}:failed", 0, 0)[0]
            job = first.decode() if isinstance(first, bytes) else str(first)
            reason = redis.client.hget(f"bull:{queue}:{job}", "failedReason")
            raise RuntimeError(f"{failed} preview jobs failed, e.g. {reason!r}")
        if done >= total:
            return
        time.sleep(0.02)
    raise RuntimeError("preview jobs did not finish in time")


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the worker's render processes)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")
