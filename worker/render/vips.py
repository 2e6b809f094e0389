"""Resizing through libvips (pyvips with pyvips-binary's libvips 8.18), inside the render processes.

libvips' LANCZOS3 reduce is vectorised; Pillow's is scalar C and cost 2 to 6 times as much for
the same renditions (docs/throughput.md, issue 34). Decoding and encoding stay with Pillow, which
is as fast or faster there and which the guards of :mod:`worker.render.limits` are written
against, except PNG (:func:`png_at`), whose rows libvips decodes faster and resizes as they
come, so the full frame is never held. The filter is the same as Pillow's ``LANCZOS``, on the
same 8-bit pixels, premultiplied by alpha as Pillow's own resize does (so transparent pixels'
colours do not bleed into the edges); the output differs from Pillow's by rounding.

libvips is loaded on first use, or by :func:`load` when a render process starts, never in the
consumer process, which only imports this package for its types.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    from worker.render.registry import OutputSpec

#: EXIF orientations that rotate by 90 or 270 degrees.
SWAPS_AXES = (5, 6, 7, 8)
#: What undoes each EXIF orientation but 1 (as ``ImageOps.exif_transpose`` does).
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}  # fmt: skip

#: Bands per mode resized here.
BANDS = {"L": 1, "RGB": 3, "RGBA": 4}


@functools.cache
def load() -> ModuleType:
    """Import and set up pyvips (once); returns the module."""
    import pyvips

    # Every render is a different image: the operation cache would only hold pixels after it.
    pyvips.cache_set_max(0)
    # One render process runs per core (PREVIEW_RENDER_PROCESSES); more threads per render
    # would only contend with the other processes for the same cores.
    pyvips.concurrency_set(1)
    module: ModuleType = pyvips
    return module


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` (L, RGB or RGBA) resized to exactly ``size`` with libvips' LANCZOS3."""
    pixels = image.tobytes()  # the vips image reads these; they live until the end of the call
    vimage = load().Image.new_from_memory(pixels, image.width, image.height, BANDS[image.mode], "uchar")
    return _to_pil(_resize(vimage, size))


def _resize(vimage: Any, size: tuple[int, int]) -> Any:
    """A libvips image (uchar; 1, 3 or 4 bands) resized to exactly ``size``, premultiplied if 4."""
    alpha = vimage.bands == 4
    if alpha:  # premultiplied, rounded to 8 bits as Pillow's RGBa, streamed without a full copy
        vimage = vimage.premultiply().rint().cast("uchar")
    resized = vimage.resize(size[0] / vimage.width, vscale=size[1] / vimage.height, kernel="lanczos3")
    if alpha:
        resized = resized.unpremultiply().rint().cast("uchar")
    if (resized.width, resized.height) != size:  # libvips rounds the scaled size; never seen off
        made = f"{resized.width}x{resized.height}"
        raise ValueError(f"libvips resized {vimage.width}x{vimage.height} to {made}, not {size}")
    return resized


def _to_pil(vimage: Any) -> Image.Image:
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[vimage.bands]
    return Image.frombuffer(mode, (vimage.width, vimage.height), vimage.write_to_memory(), "raw", mode, 0, 1)


def png_at(
    data: bytes, outputs: Sequence[OutputSpec], sized: Callable[[Sequence[OutputSpec], bool], tuple[int, int]]
) -> Image.Image:
    """A PNG decoded, resized and oriented in one streamed pass, as RGB or RGBA.

    ``sized(outputs, swap)`` gives the size to resize to, in stored orientation (``swap``: the
    EXIF orientation, from the PNG's ``eXIf`` chunk, turns it by 90 degrees). Rows are resized as
    libpng decodes them, so the full frame is never held (an interlaced PNG excepted: libpng holds
    it whole). Grey, 16-bit and palette PNGs come out as 8-bit sRGB, with alpha when the PNG has
    any (an alpha channel or a ``tRNS`` chunk). A damaged stream, which shows only once the rows
    are read, raises ``OSError`` (``MemoryError`` for libvips' own).
    """
    pyvips = load()
    try:
        vimage = pyvips.Image.pngload_buffer(data, access="sequential", fail_on="error")
        orientation = vimage.get("orientation") if vimage.get_typeof("orientation") else 1
        if vimage.interpretation != "srgb" or vimage.format != "uchar":
            vimage = vimage.colourspace("srgb")  # grey to three bands, 16 bits to 8; alpha kept
        size = sized(outputs, orientation in SWAPS_AXES)
        if (vimage.width, vimage.height) != size:
            vimage = _resize(vimage, size)
        image = _to_pil(vimage)
    except pyvips.Error as err:
        if "out of memory" in str(err):
            raise MemoryError(str(err)) from None
        detail = str(err).strip().splitlines()[-1][:200]
        raise OSError(f"PNG stream truncated or damaged ({detail})") from None
    return image.transpose(TRANSPOSE[orientation]) if orientation in TRANSPOSE else image
