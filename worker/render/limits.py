"""What one render may cost, checked on the header before any pixel is decoded.

Two guards: a pixel count (``PREVIEW_MAX_PIXELS``, against decompression bombs) and a memory
budget in bytes (``PREVIEW_RENDER_MEMORY_BYTES``). The pixel guard alone let a 130 KB WebP of
7000x7000 decode to 1 GiB. The budget is also the render process's hard limit
(``worker.render.child``), so an estimate that is too low ends in a clear error, never in the
pod's OOM kill.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from worker import constants as c
from worker.errors import BudgetExceeded

if TYPE_CHECKING:
    from worker.render.registry import OutputSpec

#: Peak bytes of a render per pixel of the decoded source (the draft size for a JPEG, the page
#: bitmap for a PDF), by source format: the decoder's buffers, Pillow's frame (4 bytes a pixel
#: even for RGB), the converted copy where one is needed and the resize's intermediate. Measured
#: at 2000x1500 and 4000x4000 with a 320-px and a 1200-px rendition (RGB PNG 10, RGBA PNG 14,
#: greyscale PNG 11, WebP 18, GIF 6, JPEG 9, PDF 12), with headroom; tests/worker/
#: test_render_memory.py measures them again and fails if one is above its estimate.
PEAK_BYTES_PER_PIXEL = {"JPEG": 11, "PNG": 16, "GIF": 10, "WEBP": 22, "PDF": 16}
#: Per pixel of each rendition: the resized image and its encoder's buffer.
RENDITION_BYTES_PER_PIXEL = 8
#: A progressive JPEG's whole-image coefficient buffer: 64 coefficients of 2 bytes per 8x8 block.
COEFFICIENT_BYTES_PER_BLOCK = 64 * 2


@dataclass(frozen=True)
class RenderLimits:
    """The guards of one render."""

    max_pixels: int
    memory_bytes: int = c.RENDER_MEMORY_BYTES_DEFAULT


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Refuse a decompression bomb before decoding it."""
    if width * height > max_pixels:
        raise BudgetExceeded(
            f"source is {width}x{height} = {width * height} pixels, over the {max_pixels}-pixel guard"
        )


def peak_bytes(width: int, height: int, source_format: str, outputs: Sequence[OutputSpec]) -> int:
    """The estimated peak memory of rendering ``outputs`` from a ``width`` x ``height`` source."""
    renditions = sum(o.width * o.height for o in outputs) * RENDITION_BYTES_PER_PIXEL
    per_pixel = PEAK_BYTES_PER_PIXEL.get(source_format, max(PEAK_BYTES_PER_PIXEL.values()))
    return width * height * per_pixel + renditions


def jpeg_coefficient_bytes(width: int, height: int, sampling: Sequence[tuple[int, int]]) -> int:
    """What libjpeg holds to decode a progressive JPEG: every component's DCT coefficients for the
    whole image, at full size whatever the draft scale (``sampling``: each component's horizontal
    and vertical factors). A 6000x4000 4:4:4 image needs 137 MiB before a pixel comes out."""
    h_max = max(h for h, _ in sampling)
    v_max = max(v for _, v in sampling)
    blocks = sum(
        math.ceil(math.ceil(width * h / h_max) / 8) * math.ceil(math.ceil(height * v / v_max) / 8)
        for h, v in sampling
    )
    return blocks * COEFFICIENT_BYTES_PER_BLOCK


def check_memory(
    width: int,
    height: int,
    source_format: str,
    outputs: Sequence[OutputSpec],
    limits: RenderLimits,
    *,
    held_bytes: int = 0,
    source: str | None = None,
) -> None:
    """Refuse, with the sizes, a render whose estimated peak is over the memory budget.

    ``held_bytes``: what the decoder holds besides the decoded frame (a progressive JPEG's
    coefficients); ``source``: how to name the source in the error (default ``WxH FORMAT``).
    """
    need = peak_bytes(width, height, source_format, outputs) + held_bytes
    if need > limits.memory_bytes:
        named = source or f"{width}x{height} {source_format}"
        raise BudgetExceeded(
            f"rendering a {named} source needs about {need // 2**20} MiB, over "
            f"the render memory budget of {limits.memory_bytes // 2**20} MiB ({c.ENV_RENDER_MEMORY_BYTES})"
        )
