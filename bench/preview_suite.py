"""Preview throughput on a generated corpus: the real worker against ``vipsthumbnail``.

Both sides get both cores: one ``python -m worker run`` as a stack runs it in a 2-CPU pod
(concurrency 4, two render processes, ``PREVIEW_RENDER_PROCESSES=2``) consuming real preview
jobs with ``path`` sources, against two ``vipsthumbnail`` processes splitting the same files.
Each file gets three WebP renditions (320, 640 and 1280 px boxes, quality 80) on both sides;
the two run in turn, and the medians are compared.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.redis_kit import BenchRedis

SIZES = (320, 640, 1280)
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mobius-preview-worker" / "bench-corpus"
)
VARIANTS = 4  # distinct images per kind; the rest are copies (decode cost does not depend on identity)


def corpus(jpegs: int, pngs: int, pdfs: int) -> Path:
    """Generate (or reuse from the cache) the corpus; returns its directory."""
    root = CACHE / f"j{jpegs}-p{pngs}-d{pdfs}"
    done = root / ".complete"
    if done.exists():
        return root
    from PIL import Image, ImageDraw

    root.mkdir(parents=True, exist_ok=True)

    def picture(w: int, h: int, seed: int) -> Image.Image:
        base = Image.merge(
            "RGB",
            [
                Image.linear_gradient("L").resize((w, h)),
                Image.radial_gradient("L").resize((w, h)),
                Image.effect_noise((w // 8, h // 8), 40 + seed * 10).resize((w, h)),
            ],
        )
        draw = ImageDraw.Draw(base)
        for i in range(40):
            x, y = (i * 97 * (seed + 1)) % w, (i * 53 * (seed + 3)) % h
            draw.ellipse((x, y, x + w // 10, y + h // 10), outline=(255, 255 - i * 5, i * 6), width=9)
        return base

    kinds = (
        ("jpg", jpegs, (4000, 3000), {"format": "JPEG", "quality": 90}),
        ("png", pngs, (2000, 1500), {"format": "PNG"}),
        ("pdf", pdfs, (1240, 1754), {"format": "PDF", "resolution": 150.0}),
    )
    for ext, count, (w, h), save in kinds:
        for i in range(count):
            target = root / f"{ext}-{i:04d}.{ext}"
            if i < VARIANTS:
                picture(w, h, i).save(target, **save)
            else:
                shutil.copyfile(root / f"{ext}-{i % VARIANTS:04d}.{ext}", target)
    done.touch()
    return root


def files(root: Path) -> list[Path]:
    """The corpus files, sorted."""
    return sorted(p for p in root.iterdir() if p.suffix in (".jpg", ".png", ".pdf"))


def run_vips(root: Path, procs: int = 2) -> dict[str, Any]:
    """Time two ``vipsthumbnail`` pipelines (one per core) over the corpus."""
    binary = shutil.which("vipsthumbnail")
    if binary is None:
        raise SystemExit("vipsthumbnail is not installed (deps/apt-bench.txt: libvips-tools)")
    items = files(root)
    with tempfile.TemporaryDirectory(prefix="bench-vips-") as out:
        shares = [items[i::procs] for i in range(procs)]
        script = " && ".join(f'"{binary}" --size {s}x{s} -o "{out}/%s_{s}.webp[Q=80]" "$@"' for s in SIZES)
        started = time.perf_counter()
        running = [subprocess.Popen(["sh", "-c", script, "vips", *map(str, share)]) for share in shares]
        codes = [p.wait() for p in running]
        seconds = time.perf_counter() - started
        made = len(list(Path(out).iterdir()))
    if any(codes) or made != len(items) * len(SIZES):
        raise RuntimeError(f"vipsthumbnail failed: exit codes {codes}, {made} of {len(items) * 3} files")
    return {"seconds": seconds, "files": len(items), "files_per_s": len(items) / seconds}


def run_worker(
    root: Path, redis: BenchRedis, procs: int = 1, concurrency: int = 4, render_processes: int = 2
) -> dict[str, Any]:
    """Time ``procs`` real worker processes rendering the corpus through the queue."""
    items = files(root)
    queue = f"preview-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-data-") as data_dir:
        env = {
            **os.environ,
            "REDIS_URL": redis.url,
            "PREVIEW_QUEUE_NAME": queue,
            "DATA_DIR": data_dir,
            "PREVIEW_INPUT_ROOT": str(root),
            "PREVIEW_WORKER_CONCURRENCY": str(concurrency),
            "PREVIEW_RENDER_PROCESSES": str(render_processes),
            "PREVIEW_METRICS_PORT": "0",
            "PREVIEW_MAX_SOURCE_BYTES": str(200 * 2**20),
        }
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "worker", "run"],
                env=env,
                cwd=Path(__file__).resolve().parent.parent,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for _ in range(procs)
        ]
        try:
            for w in workers:
                _wait_ready(w)
            started = time.perf_counter()
            _enqueue(redis.url, queue, [p.name for p in items])
            completed = _wait_finished(redis, queue, len(items))
            seconds = time.perf_counter() - started
            rss = [_peak_rss_kb(w.pid) for w in workers]
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(60)
        made = sum(1 for _ in Path(data_dir).glob("*/*.webp"))
    if completed != len(items) or made != len(items) * len(SIZES):
        raise RuntimeError(f"worker finished {completed} of {len(items)} jobs, {made} renditions")
    return {
        "seconds": seconds,
        "files": len(items),
        "files_per_s": len(items) / seconds,
        "processes": procs,
        "concurrency": concurrency,
        "render_processes": render_processes,
        "rss_peak_kb": max(rss),
    }


def compare(root: Path, redis: BenchRedis, rounds: int) -> dict[str, Any]:
    """``vipsthumbnail`` and the worker in turn, ``rounds`` times; the medians and their ratio."""
    import statistics

    vips, worker = [], []
    for _ in range(rounds):
        vips.append(run_vips(root))
        worker.append(run_worker(root, redis))
    best = {"worker": worker[0], "vipsthumbnail": vips[0]}
    for name, runs in (("worker", worker), ("vipsthumbnail", vips)):
        best[name] = {**runs[0], "files_per_s": statistics.median(r["files_per_s"] for r in runs)}
    w, v = best["worker"], best["vipsthumbnail"]
    w["rss_peak_kb"] = max(r["rss_peak_kb"] for r in worker)
    return {**best, "rounds": rounds, "ratio": w["files_per_s"] / v["files_per_s"]}


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if "worker ready" in line:
            # Keep draining stdout so the worker never blocks on a full pipe.
            threading_drain(proc)
            return
    raise RuntimeError(f"worker exited before ready (status {proc.wait()})")


def threading_drain(proc: subprocess.Popen[str]) -> None:
    """Read and discard the rest of ``proc``'s stdout on a daemon thread."""
    import threading

    assert proc.stdout is not None
    stream = proc.stdout
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()


def _enqueue(url: str, queue: str, names: list[str]) -> None:
    from bullmq import Queue

    from worker import constants as c

    outputs = [
        {"name": f"w{s}", "format": "webp", "width": s, "height": s, "fit": "contain", "quality": 80}
        for s in SIZES
    ]

    async def go() -> None:
        q = Queue(queue, {"connection": url, "prefix": c.BULL_PREFIX})
        try:
            await q.addBulk(
                [
                    {
                        "name": "preview",
                        "data": {"jobId": f"b{i}", "source": {"path": n}, "outputs": outputs},
                        "opts": {"jobId": f"b{i}"},
                    }
                    for i, n in enumerate(names)
                ]
            )
        finally:
            await q.close()

    asyncio.run(go())


def _wait_finished(redis: BenchRedis, queue: str, total: int, timeout: float = 1800) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = redis.client.zcard(f"bull:{queue}:completed")
        failed = redis.client.zcard(f"bull:{queue}:failed")
        if done + failed >= total:
            if failed:
                ids = redis.client.zrange(f"bull:{queue}:failed", 0, 0)
                reason = redis.client.hget(f"bull:{queue}:{ids[0].decode()}", "failedReason")
                raise RuntimeError(f"{failed} preview jobs failed, e.g. {reason!r}")
            return int(done)
        time.sleep(0.02)
    raise RuntimeError("preview jobs did not finish in time")


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


if __name__ == "__main__":
    print(json.dumps(run_vips(corpus(2, 1, 1))))
