"""The libvips paths of the raster renderer (issue 34): PNGs decoded and resized by libvips in one
streamed pass, every other resize by libvips' LANCZOS3. They must give what the Pillow path gave:
the same sizes, orientation, alpha and, to within rounding, the same pixels; and the guards must
refuse before libvips decodes a row.
"""

from __future__ import annotations

import io
import time

import pytest
import worker_media as media
from PIL import Image, ImageChops, ImageOps, ImageStat

from worker.errors import BudgetExceeded
from worker.render import OutputSpec, RenderLimits, raster, render, vips
from worker.render.limits import STREAMED_PNG, peak_bytes

LIMITS = RenderLimits(50_000_000, 2**30)
BOX = [OutputSpec("b", "png", 120, 120)]


def pillow_reference(data: bytes, out: OutputSpec) -> Image.Image:
    """What the Pillow-only path made: full decode, EXIF orientation, RGB(A), LANCZOS."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    alpha = image.mode in ("RGBA", "LA") or "transparency" in image.info
    if image.mode == "I;16":  # Pillow clips 16-bit grey to 8 bits; libvips scales it, which is right
        image = image.point(lambda v: v / 257).convert("L")
    image = image.convert("RGBA" if alpha else "RGB")
    return image.resize(raster.target_size(image.width, image.height, out), Image.Resampling.LANCZOS)


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    assert a.mode == b.mode and a.size == b.size, (a.mode, a.size, b.mode, b.size)
    return max(ImageStat.Stat(ImageChops.difference(a, b)).mean)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16"])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_a_png_through_libvips_matches_the_pillow_path(mode: str, orientation: int) -> None:
    data = media.png_of_mode(mode, 300, 200, orientation)
    image = raster.decode(data, BOX, LIMITS)
    reference = pillow_reference(data, BOX[0])
    assert image.size == reference.size == ((120, 80) if orientation in (1, 3) else (80, 120))
    assert mean_difference(image, reference) < 2.0  # of 255, per channel


def test_an_interlaced_png_decodes_and_is_judged_at_its_full_size() -> None:
    data = media.interlaced_png(600, 400)
    _, (r,) = render(data, BOX, LIMITS)
    assert (r.width, r.height) == (120, 80)
    # libpng must hold an interlaced PNG whole: the budget counts every pixel of it.
    need = peak_bytes(600, 400, "PNG", BOX)
    with pytest.raises(BudgetExceeded, match=r"600x400 PNG source needs about"):
        render(data, BOX, RenderLimits(50_000_000, need - 1))


def test_a_streamed_png_is_judged_at_the_size_it_is_resized_to() -> None:
    data = media.png(3000, 2000)
    need = peak_bytes(120, 80, STREAMED_PNG, BOX)
    assert need < peak_bytes(3000, 2000, "PNG", BOX) // 100
    _, (r,) = render(data, BOX, RenderLimits(50_000_000, need))
    assert (r.width, r.height) == (120, 80)
    with pytest.raises(BudgetExceeded, match=r"rendering a 3000x2000 PNG source needs about"):
        render(data, BOX, RenderLimits(50_000_000, need - 1))


def test_a_png_bomb_is_refused_on_its_header_before_libvips_decodes_a_row() -> None:
    bomb = vips.load().Image.black(20_000, 20_000).pngsave_buffer(compression=9)  # 400 Mpx, real rows
    assert len(bomb) < 2_000_000
    started = time.monotonic()
    guard = r"20000x20000 = 400000000 pixels, over the 50000000-pixel guard"
    with pytest.raises(BudgetExceeded, match=guard):
        render(bomb, BOX, LIMITS)
    assert time.monotonic() - started < 0.5  # a decode of 400 Mpx takes seconds


def test_a_damaged_png_stream_is_reported_as_truncated() -> None:
    data = media.png(300, 200)
    damaged = data[:60] + bytes(b ^ 0x5A for b in data[60:-20]) + data[-20:]
    with pytest.raises(Exception, match=r"^source image is truncated$"):
        render(damaged, BOX, LIMITS)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_a_libvips_resize_is_pillows_lanczos_to_within_rounding(mode: str) -> None:
    source = Image.open(io.BytesIO(media.png(900, 700, alpha=True))).convert(mode)
    for size in [(300, 233), (451, 351), (1, 1), (899, 700)]:
        made = vips.resize(source, size)
        assert made.size == size and made.mode == mode
        pillow = source.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        assert mean_difference(made, pillow) < (2.0 if min(size) > 1 else 8.0), size


def test_libvips_is_not_loaded_in_the_consumer_process() -> None:
    import subprocess
    import sys

    code = "import sys, worker.pipeline, worker.render; print('pyvips' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
