"""Raster images (JPEG, PNG, WebP, GIF first frame): decoded and encoded with Pillow, resized with libvips.

JPEG sources decode in draft mode (DCT scaling at 1/2, 1/4 or 1/8), which is
where most of the time goes on large photos. EXIF orientation is applied, and
the pixel and memory guards (``worker.render.limits``) run on the header before
any pixel is decoded.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence

from PIL import Image, ImageOps, UnidentifiedImageError

from worker.errors import PermanentJobError, RenderError
from worker.render import vips
from worker.render.limits import (
    STREAMED_PNG,
    RenderLimits,
    check_memory,
    check_pixels,
    jpeg_coefficient_bytes,
)
from worker.render.registry import OutputSpec, Rendition, register

# Our own guard (max_pixels) replaces Pillow's global one, which warns rather than refuses.
Image.MAX_IMAGE_PIXELS = None
#: A PNG's interlace method: the last byte of its IHDR chunk, which the format puts first.
PNG_INTERLACE_BYTE = 28
#: A rendition is made from an earlier, larger one when that is at least this many times its size.
CASCADE_FACTOR = 2.0


@register("image/jpeg", "image/png", "image/gif", "image/webp")
def render_raster(data: bytes, outputs: Sequence[OutputSpec], limits: RenderLimits) -> list[Rendition]:
    """Decode ``data`` once and produce every requested rendition."""
    image = decode(data, outputs, limits)
    return [encode(resized, out) for resized, out in zip(resize_all(image, outputs), outputs, strict=True)]


def resize_all(image: Image.Image, outputs: Sequence[OutputSpec]) -> list[Image.Image]:
    """Each output's image, in the order given, the larger ones first made.

    A rendition is resized from the smallest whole-frame rendition already made that is still
    :data:`CASCADE_FACTOR` times its size, not from the source each time: a 320 px box from the
    1280 px one costs a sixteenth of it from a 2000 px decode. Cropped (``cover``) renditions are
    never reused, since they are not the whole frame.
    """
    order = sorted(range(len(outputs)), key=lambda i: -outputs[i].width * outputs[i].height)
    made: dict[int, Image.Image] = {}
    frames: list[Image.Image] = []  # whole-frame images made so far, largest first
    for i in order:
        out = outputs[i]
        source = image
        for frame in reversed(frames):  # smallest first
            if _fit_scale(frame, out) >= CASCADE_FACTOR:
                source = frame
                break
        made[i] = resize(source, out)
        if out.fit == "contain":
            frames.append(made[i])
    return [made[i] for i in range(len(outputs))]


def _fit_scale(frame: Image.Image, out: OutputSpec) -> float:
    """How many times larger than the rendition the part of ``frame`` it is made from is.

    For ``contain`` that part is the frame; for ``cover`` the largest crop of the rendition's
    shape, and both come to the smaller of the two axes' ratios.
    """
    tw, th = target_size(frame.width, frame.height, out)
    return min(frame.width / tw, frame.height / th)


def decode(data: bytes, outputs: Sequence[OutputSpec], limits: RenderLimits) -> Image.Image:
    """Open, guard, decode (smaller where the renditions allow) and orient an image; returns RGB or RGBA.

    Both guards run on the header, read by Pillow whatever decodes the pixels: the pixel count,
    then the memory the decode would take (at the draft size for a JPEG; a PNG, streamed through
    libvips, never holds its full frame unless it is interlaced). A JPEG decodes in draft mode,
    a PNG straight to the size the largest rendition needs (:func:`worker.render.vips.png_at`).
    No copy is made that is not needed: an RGB source is not converted, an upright one not
    transposed.
    """
    try:
        image = Image.open(io.BytesIO(data))
        check_pixels(image.width, image.height, limits.max_pixels)
        if image.format == "PNG":  # not Pillow's getexif: for a PNG it decodes the whole image
            w, h = image.width, image.height
            if data[PNG_INTERLACE_BYTE : PNG_INTERLACE_BYTE + 1] != b"\x00":  # interlaced: held whole
                check_memory(w, h, "PNG", outputs, limits)
            else:  # what it holds grows with the scaled size, turned by its orientation or not
                turns = (scaled_size(w, h, outputs, swap) for swap in (False, True))
                sw, sh = max(turns, key=lambda size: size[0] * size[1])
                check_memory(sw, sh, STREAMED_PNG, outputs, limits, source=f"{w}x{h} PNG")
            return vips.png_at(data, outputs, functools.partial(scaled_size, image.width, image.height))
        orientation = image.getexif().get(0x0112, 1)
        swap = orientation in vips.SWAPS_AXES
        held, source = 0, None
        if image.format == "JPEG":
            if image.info.get("progressive"):
                held = jpeg_coefficient_bytes(image.width, image.height, _sampling(image))
                source = f"{image.width}x{image.height} progressive JPEG"
            w, h = needed_size(image.width, image.height, outputs, swap=swap)
            image.draft("RGB", (w, h))
        check_memory(
            image.width, image.height, str(image.format), outputs, limits, held_bytes=held, source=source
        )
        image.seek(0)  # first frame of an animation
        image.load()
    except PermanentJobError:
        raise
    except UnidentifiedImageError:
        raise RenderError("source image cannot be identified (corrupt or not an image)") from None
    except MemoryError:
        raise  # the render process's limit: reported with the budget by worker.render.child
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        if "truncat" in str(err).lower():
            raise RenderError("source image is truncated") from None
        raise RenderError(f"source image cannot be decoded: {err}") from None
    oriented: Image.Image = image if orientation == 1 else ImageOps.exif_transpose(image)
    has_alpha = oriented.mode in ("RGBA", "LA", "PA") or (
        oriented.mode == "P" and "transparency" in oriented.info
    )
    mode = "RGBA" if has_alpha else "RGB"
    return oriented if oriented.mode == mode else oriented.convert(mode)


def _sampling(image: Image.Image) -> list[tuple[int, int]]:
    """A JPEG's components' sampling factors, from its frame header (``layer``: id, h, v, table)."""
    layers = getattr(image, "layer", None) or [("", 1, 1, 0)] * len(image.getbands())
    return [(int(h), int(v)) for _id, h, v, _table in layers]


def needed_size(
    width: int, height: int, outputs: Sequence[OutputSpec], swap: bool = False
) -> tuple[int, int]:
    """Smallest source size (in stored orientation) that still covers every rendition without upscaling."""
    if swap:
        width, height = height, width
    scale = max(_scale(width, height, out) for out in outputs)
    scale = min(scale, 1.0)
    w, h = math.ceil(width * scale), math.ceil(height * scale)
    return (h, w) if swap else (w, h)


def scaled_size(
    width: int, height: int, outputs: Sequence[OutputSpec], swap: bool = False
) -> tuple[int, int]:
    """The source scaled as little as every rendition allows (stored orientation, never upscaled).

    The largest ``contain`` rendition then needs no further resize: this is its size exactly.
    """
    ow, oh = (height, width) if swap else (width, height)
    scale = min(1.0, max(_scale(ow, oh, out) for out in outputs))
    w, h = max(1, round(ow * scale)), max(1, round(oh * scale))
    return (h, w) if swap else (w, h)


def _scale(width: int, height: int, out: OutputSpec) -> float:
    pick = max if out.fit == "cover" else min
    return pick(out.width / width, out.height / height)


def target_size(width: int, height: int, out: OutputSpec) -> tuple[int, int]:
    """Output size: ``cover`` is exactly the box; ``contain`` fits inside it and never upscales."""
    if out.fit == "cover":
        return out.width, out.height
    scale = min(_scale(width, height, out), 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(image: Image.Image, out: OutputSpec) -> Image.Image:
    """Resize (and for ``cover`` centre-crop) ``image`` for one rendition."""
    size = target_size(image.width, image.height, out)
    if out.fit == "cover":
        return ImageOps.fit(image, size, Image.Resampling.LANCZOS)
    if size == image.size:
        return image
    if image.mode in vips.BANDS:
        return vips.resize(image, size)
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode(image: Image.Image, out: OutputSpec) -> Rendition:
    """Encode one rendition in its format."""
    buf = io.BytesIO()
    if out.format == "jpeg":
        if image.mode == "RGBA":
            flat = Image.new("RGB", image.size, (255, 255, 255))
            flat.paste(image, mask=image.getchannel("A"))
            image = flat
        image.save(buf, "JPEG", quality=out.quality)
    elif out.format == "webp":
        image.save(buf, "WEBP", quality=out.quality)
    else:
        image.save(buf, "PNG", compress_level=3)
    return Rendition(out.name, out.format, image.width, image.height, buf.getvalue())
