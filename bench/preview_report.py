"""The preview section of the benchmark's table and chart (``bench.preview_suite`` results)."""

from __future__ import annotations

from typing import Any

from bench.similarity import BYTES_TOLERANCE, SSIM_TOLERANCE


def rows(pv: dict[str, Any]) -> list[str]:
    """Per kind: files/s of every implementation, the ratios (or why they do not count), quality."""
    w = pv["worker"]
    lines = [
        f"Preview throughput per kind, files/s on 2 cores, 3 WebP renditions each "
        f"(median of {pv['rounds']}); "
        f"a ratio counts when the worker's SSIM is at most {SSIM_TOLERANCE} lower and its bytes at most "
        f"{BYTES_TOLERANCE:.0%} larger, at every box",
        f"  worker: concurrency {w['concurrency']}, {w['render_processes']} render processes; "
        f"peak RSS worker {w['rss_peak_kb']} KiB, render process {w['render_rss_peak_kb']} KiB",
    ]
    for kind, k in pv["kinds"].items():
        speeds = "  ".join(f"{impl} {fps:6.2f}" for impl, fps in k["files_per_s"].items())
        lines.append(f"  {kind:>14} ({k['files']} files)  {speeds}")
        for name, r in k["ratios"].items():
            met = "met" if r["met"] else "MISSED"
            verdict = (
                f"{r['ratio']:.2f}x (target >= {r['target']}x: {met})"
                if r["comparable"]
                else f"not comparable ({r['why']})"
            )
            lines.append(f"  {'':>14}  {name}: {verdict}")
        for impl, q in k["quality"].items():
            cells = "  ".join(
                f"{box}px SSIM {v['ssim']:.4f} {v['bytes'] / 1024:7.1f} KiB" for box, v in q.items()
            )
            lines.append(f"  {'':>14}  {impl:>13}: {cells}")
        lines.append(
            f"  {'':>14}  reference peak RSS per process (KiB): "
            + ", ".join(f"{impl} {kb}" for impl, kb in k["reference_rss_peak_kb"].items())
        )
    return lines


def chart(ax: Any, pv: dict[str, Any]) -> None:
    """Grouped bars: files/s per kind and implementation."""
    kinds = list(pv["kinds"])
    impls = sorted({i for k in pv["kinds"].values() for i in k["files_per_s"]}, key=lambda i: i != "worker")
    width = 0.8 / len(impls)
    for n, impl in enumerate(impls):
        xs = [i + n * width for i, k in enumerate(kinds) if impl in pv["kinds"][k]["files_per_s"]]
        ys = [pv["kinds"][k]["files_per_s"][impl] for k in kinds if impl in pv["kinds"][k]["files_per_s"]]
        ax.bar(xs, ys, width, label=impl)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(kinds))], kinds, rotation=45, ha="right")
    ax.set_title("preview files/s per kind (3 renditions, 2 cores)")
    ax.legend()
