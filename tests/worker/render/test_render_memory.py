"""The render memory estimate holds: measured peaks stay under it, and the budget refuses what it must
(issue 16, item 7).

A 130 KB WebP of 7000x7000 peaked at 1 GiB and an RGBA PNG of the same size at 650 MB, both under
the pixel guard and over the stacks' memory limits. Each source here is rendered in a fresh
process, with the render processes' allocator settings, whose peak RSS is reset just before
the render (``/proc/self/clear_refs``), so the number is the render's own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import worker_media as media

from worker import constants as c
from worker.errors import PermanentJobError
from worker.render import OutputSpec, RenderLimits, render
from worker.render.limits import jpeg_coefficient_bytes, peak_bytes
from worker.render.sandbox import RenderPool

REPO = Path(__file__).resolve().parents[3]
OUTPUTS = [OutputSpec("thumb", "webp", 320, 320), OutputSpec("card", "jpeg", 1200, 1200, "cover")]

MEASURE = """
import json, sys
sys.path[:0] = [sys.argv[1]]
from worker.render import OutputSpec, RenderLimits, render
from worker.render.child import keep_freed_memory
assert keep_freed_memory()  # the render process's allocator settings
outputs = [OutputSpec("thumb", "webp", 320, 320), OutputSpec("card", "jpeg", 1200, 1200, "cover")]
# Warm up on a small source of the same kind: the codecs' first-use allocations are not the
# render's. The source comes from a file written by the test, so no freed heap of making it is
# left here for the render to reuse (which would hide its peak).
render(open(sys.argv[3], "rb").read(), [OutputSpec("w", "jpeg", 32, 32)], RenderLimits(10**9, 2**40))
data = open(sys.argv[2], "rb").read()
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")
base = rss("VmRSS:")
render(data, outputs, RenderLimits(10**9, 2**40))
print(json.dumps({"peak": rss("VmHWM:") - base}))
"""

MAKE = {
    "png": media.png,
    "pnga": lambda w, h: media.png(w, h, alpha=True),
    "webp": media.webp,
    "gif": lambda w, h: media.gif(w, h, frames=1),
    "jpeg": media.jpeg,
    "pdf": lambda w, h: media.pdf(w, h, pages=1),
    "pjpeg": media.progressive_jpeg,
    # a 300 dpi scan: one JPEG covering the page, decoded from the JPEG at its draft size
    # (worker.render.pdf_scan), not by PDFium at full size
    "scan": lambda w, h: media.encode(media._image(w, h), "PDF", resolution=300.0),
}

# (kind, width, height, Pillow's format name for the estimate, decoded size); PDF sizes are points,
# and the page bitmap for a 1200-px cover rendition of a 612x792 page is 1212x1568. A progressive
# JPEG also holds its whole-image coefficients (``held``, below).
CASES = [
    ("png", 3000, 2000, "PNG", (3000, 2000)),
    ("pnga", 3000, 2000, "PNG", (3000, 2000)),
    ("webp", 3000, 2000, "WEBP", (3000, 2000)),
    ("gif", 3000, 2000, "GIF", (3000, 2000)),
    ("jpeg", 4000, 3000, "JPEG", (2000, 1500)),  # decoded at the 1/2 draft size
    ("pdf", 612, 792, "PDF", (1212, 1568)),
    ("pjpeg", 4000, 3000, "JPEG", (2000, 1500)),
    ("scan", 2480, 3508, "JPEG", (1240, 1754)),  # A4 at 300 dpi; its 1212x1715 bitmap from the 1/2 draft
]


def held(kind: str, width: int, height: int) -> int:
    return jpeg_coefficient_bytes(width, height, [(1, 1)] * 3) if kind == "pjpeg" else 0


@pytest.mark.parametrize(("kind", "width", "height", "fmt", "decoded"), CASES)
def test_a_render_peaks_under_its_estimate(
    kind: str, width: int, height: int, fmt: str, decoded: tuple[int, int], tmp_path: Path
) -> None:
    source, small = tmp_path / "source", tmp_path / "small"
    source.write_bytes(MAKE[kind](width, height))
    small.write_bytes(MAKE[kind](60, 80))
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(REPO), str(source), str(small)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    peak = json.loads(done.stdout)["peak"]
    estimate = peak_bytes(*decoded, fmt, OUTPUTS) + held(kind, width, height)
    assert peak <= estimate, f"{kind}: measured {peak >> 20} MiB over the estimate {estimate >> 20} MiB"
    # ... and not so far over that the budget refuses what would fit.
    assert estimate <= 3 * peak, f"{kind}: estimate {estimate >> 20} MiB, measured only {peak >> 20} MiB"


def test_a_large_webp_under_the_pixel_guard_is_refused_by_the_memory_budget_before_decoding() -> None:
    data = media.encode(media._image(4000, 4000), "WEBP", quality=50, method=0)  # 16 Mpx, under 50 Mpx
    with pytest.raises(PermanentJobError) as err:
        render(data, OUTPUTS, RenderLimits(50_000_000, 256 * 2**20))
    message = str(err.value)
    assert message.startswith("rendering a 4000x4000 WEBP source needs about ")
    assert message.endswith(f"MiB, over the render memory budget of 256 MiB ({c.ENV_RENDER_MEMORY_BYTES})")
    # With room for it, the same source renders.
    _, renditions = render(data, OUTPUTS, RenderLimits(50_000_000, 2**30))
    assert [(r.width, r.height) for r in renditions] == [(320, 320), (1200, 1200)]


def test_a_jpeg_is_judged_at_its_draft_size_so_a_large_photo_for_a_thumbnail_fits() -> None:
    data = media.jpeg(6000, 4000)  # 24 Mpx: 264 MiB at full size, about 17 MiB at the 1/8 draft
    _, (thumb,) = render(data, [OutputSpec("t", "webp", 320, 320)], RenderLimits(50_000_000, 64 * 2**20))
    assert (thumb.width, thumb.height) == (320, 213)


def test_a_pdf_page_bitmap_over_the_budget_is_refused() -> None:
    with pytest.raises(PermanentJobError, match=r"^rendering a \d+x\d+ PDF source needs about \d+ MiB"):
        render(media.pdf(612, 792, pages=1), [OutputSpec("x", "png", 4000, 4000)], RenderLimits(10**9, 2**25))


async def test_a_progressive_jpeg_over_the_budget_names_the_budget_not_a_broken_stream() -> None:
    """libjpeg holds a progressive JPEG's coefficients at full size whatever the draft scale: a
    6000x4000 4:4:4 one needs 137 MiB for a thumbnail. Under a 64 MiB budget it failed inside the
    render process as "broken data stream", blaming a valid file."""
    data = media.progressive_jpeg(6000, 4000)
    pool = RenderPool(1, 64 * 2**20, 60)
    try:
        with pytest.raises(PermanentJobError) as err:
            await pool.render(data, [OutputSpec("t", "webp", 320, 320)], 50_000_000)
    finally:
        await pool.close()
    assert str(err.value).startswith("rendering a 6000x4000 progressive JPEG source needs about 1")
    assert str(err.value).endswith(f"over the render memory budget of 64 MiB ({c.ENV_RENDER_MEMORY_BYTES})")
    # A baseline JPEG of the same size still fits (decoded at the 1/8 draft, no coefficients held).
    _, (thumb,) = render(
        media.jpeg(6000, 4000), [OutputSpec("t", "webp", 320, 320)], RenderLimits(50_000_000, 64 * 2**20)
    )
    assert (thumb.width, thumb.height) == (320, 213)
