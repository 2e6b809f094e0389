"""Raster images (JPEG, PNG, WebP, GIF first frame) with Pillow.

JPEG sources decode in draft mode (DCT scaling at 1/2, 1/4 or 1/8), which is
where most of the time goes on large photos. EXIF orientation is applied, and
the pixel and memory guards (``worker.render.limits``) run on the header before
any pixel is decoded.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from PIL import Image, ImageOps, UnidentifiedImageError

from worker.errors import PermanentJobError, RenderError
from worker.render.limits import RenderLimits, check_memory, check_pixels, jpeg_coefficient_bytes
from worker.render.registry import OutputSpec, Rendition, register

# Our own guard (max_pixels) replaces Pillow's global one, which warns rather than refuses.
Image.MAX_IMAGE_PIXELS = None
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that rotate by 90 or 270 degrees
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
    """Open, guard, draft-decode and orient an image; returns RGB, or RGBA if any pixel is not opaque.

    Both guards run on the header: the pixel count, then the memory the decode would take (at
    the draft size for a JPEG). No copy is made that is not needed: an RGB source is not
    converted, an upright one not transposed.
    """
    try:
        image = Image.open(io.BytesIO(data))
        check_pixels(image.width, image.height, limits.max_pixels)
        orientation = image.getexif().get(0x0112, 1)
        held, source = 0, None
        if image.format == "JPEG" and not lossless_jpeg(data):
            if image.info.get("progressive"):
                held = jpeg_coefficient_bytes(image.width, image.height, sampling(image))
                source = f"{image.width}x{image.height} progressive JPEG"
            w, h = needed_size(image.width, image.height, outputs, swap=orientation in _SWAPS_AXES)
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
    decoded = oriented if oriented.mode == mode else oriented.convert(mode)
    if mode == "RGBA" and _alpha_range(decoded) == (255, 255):
        # An alpha channel with nothing transparent (an animated WebP's frames always have one):
        # RGB gives the same renditions without premultiplying for every resize (10 % of an
        # animated WebP's render; docs/throughput.md, issue 34).
        return decoded.convert("RGB")
    return decoded


#: Start-of-frame markers of lossless JPEG (sequential, differential; Huffman or arithmetic coded).
_LOSSLESS_FRAMES = frozenset((0xC3, 0xC7, 0xCB, 0xCF))


def lossless_jpeg(data: bytes) -> bool:
    """Whether a JPEG's frame is lossless, which libjpeg cannot decode scaled (so no draft).

    Walks the marker segments from SOI to the first start-of-frame (``0xFFC0``-``0xFFCF`` but
    DHT, JPG and DAC). Drafted, such a file failed with "broken data stream" though it decodes
    whole. A malformed header answers False and fails in the decoder as before.
    """
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte
            pos += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker in _LOSSLESS_FRAMES
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return False


def _alpha_range(image: Image.Image) -> tuple[float, float]:
    """The lowest and highest alpha of an RGBA image."""
    low, high = image.getextrema()[3]  # type: ignore[misc]  # one (min, max) per band
    return low, high


def sampling(image: Image.Image) -> list[tuple[int, int]]:
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
