"""A scanned page decoded from its one embedded JPEG, at the size the renditions need.

A scanned PDF page is one DCTDecode image covering the page. PDFium decodes that image at full
resolution (a 300 dpi A4 scan is 8.7 Mpx) and then scales it down to the page bitmap: a third of
such a page's render. When the page is provably nothing but that image, :func:`scanned_page`
decodes the JPEG with libjpeg's DCT scaling (Pillow's ``draft``, as for a JPEG upload) to at
least the bitmap's size and resizes it to exactly that size, turned as the page shows it: the
same picture as ``page.render`` (``tests/worker/render/test_pdf_scan.py`` scores the two against
PDFium's supersampled page, with the benchmark's rule).

Anything it cannot prove returns ``None``, and the page is rendered by PDFium as before: another
object on the page (an invisible OCR text layer excepted), an annotation, a clip, transparency,
a marked-content or inactive object, an image that does not cover the page or is not axis-aligned,
an image dictionary with anything but the plain keys (``SMask``, ``Mask``, ``Decode``,
``DecodeParms``, ``Interpolate``, ``Intent``, ...), a colour space other than a direct
``/DeviceRGB`` or ``/DeviceGray`` (CMYK, ICC, Indexed), a filter other than one ``DCTDecode``,
an encrypted file, graphics-state parameters anywhere in the file (``/ExtGState``, which may
carry a transfer function), object streams or escaped names (which could hide them), an image
larger than the pixel guard or the memory budget, an image smaller than the bitmap (PDFium
scales it up its own way), and a JPEG that Pillow cannot decode. So a
hostile file fails, or renders, exactly as it does through PDFium.
"""

from __future__ import annotations

import ctypes
import io
import math
from collections.abc import Sequence

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from worker.errors import BudgetExceeded
from worker.render.limits import RenderLimits, check_memory, check_pixels, jpeg_coefficient_bytes
from worker.render.pdf_stream import image_dict_is_plain, only_plain_objects
from worker.render.raster import sampling
from worker.render.registry import OutputSpec

#: How far (in bitmap pixels) the image's edges may be from the page's.
EDGE_TOLERANCE_PX = 0.25
#: The resize from the DCT-scaled decode to the bitmap. Bicubic scores at least PDFium's own
#: downscale (SSIM against the supersampled page) at the same bytes within 1 %; LANCZOS
#: scores a little higher but costs as much time as the decode it saves (docs/throughput.md).
RESAMPLE = Image.Resampling.BICUBIC
#: By PDFium's colour space family: Pillow's mode, PDFium's bits per pixel, the dictionary's name.
_SPACES = {
    pdfium_c.FPDF_COLORSPACE_DEVICERGB: ("RGB", 24, b"DeviceRGB"),
    pdfium_c.FPDF_COLORSPACE_DEVICEGRAY: ("L", 8, b"DeviceGray"),
}


def scanned_page(
    data: bytes, doc: pdfium.PdfDocument, page: pdfium.PdfPage, scale: float,
    outputs: Sequence[OutputSpec], limits: RenderLimits,
) -> Image.Image | None:  # fmt: skip
    """Page 1 as ``page.render(scale=scale)`` would draw it (same size; RGB, or L for a grey JPEG),
    or ``None`` to render it."""
    pw, ph = page.get_size()
    # pypdfium2's bitmap size; PDFium stretches an image over every pixel its rectangle touches,
    # so a page that covers 285.7 columns gets the image over all 286, as here.
    size = (math.ceil(pw * scale), math.ceil(ph * scale))
    try:
        found = _plain_scan(data, doc, page, scale)
    except pdfium.PdfiumError:
        return None  # PDFium could not say (an object's bounds, matrix or data): it renders
    if found is None:
        return None
    raw, turn, (mode, pixels) = found
    stored = (size[1], size[0]) if turn[0] else size  # the bitmap's size in the image's own orientation
    decoded = _decode(raw, mode, pixels, stored, outputs, limits)
    if decoded is None:
        return None
    return _apply_turn(decoded.resize(stored, RESAMPLE), turn)


def _plain_scan(
    data: bytes, doc: pdfium.PdfDocument, page: pdfium.PdfPage, scale: float
) -> tuple[bytes, Turn, tuple[str, tuple[int, int]]] | None:
    """The page's one image's raw JPEG, how it is turned, and its Pillow mode and pixel size, if
    the page is provably nothing else; ``None`` otherwise."""
    if pdfium_c.FPDF_GetSecurityHandlerRevision(doc) != -1:
        return None
    image = _the_only_image(page)
    if image is None:
        return None
    turn = _turn(image, page, scale)
    if turn is None:
        return None
    meta = image.get_metadata()
    space = _SPACES.get(meta.colorspace)
    if space is None or meta.bits_per_pixel != space[1] or image.get_filters() != ["DCTDecode"]:
        return None
    raw = bytes(image.get_data(decode_simple=False))
    pixels = (meta.width, meta.height)
    if not image_dict_is_plain(data, raw, space[2], pixels) or not only_plain_objects(data, raw):
        return None
    return raw, turn, (space[0], pixels)


def _the_only_image(page: pdfium.PdfPage) -> pdfium.PdfImage | None:
    """The page's one visible object if it is an image with nothing applied to it, else ``None``.

    Text in render mode 3 (invisible: an OCR layer) draws nothing in PDFium and is skipped; mode 7
    (invisible, but clipping) is not, since it clips what follows.
    """
    if pdfium_c.FPDFPage_GetAnnotCount(page) != 0:
        return None
    found: pdfium.PdfImage | None = None
    for obj in page.get_objects(max_depth=0):
        if (
            obj.type == pdfium_c.FPDF_PAGEOBJ_TEXT
            and pdfium_c.FPDFTextObj_GetTextRenderMode(obj) == pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE
        ):
            continue
        if found is not None or not isinstance(obj, pdfium.PdfImage):
            return None
        found = obj
    if found is None or not _untouched(found):
        return None
    return found


def _untouched(obj: pdfium.PdfObject) -> bool:
    """No transparency (blend mode, soft mask, alpha), no clip, no marked content, active."""
    if pdfium_c.FPDFPageObj_HasTransparency(obj) or pdfium_c.FPDFPageObj_CountMarks(obj) != 0:
        return False
    active = pdfium_c.FPDF_BOOL(0)
    if not pdfium_c.FPDFPageObj_GetIsActive(obj, ctypes.byref(active)) or not active.value:
        return False
    clip = pdfium_c.FPDFPageObj_GetClipPath(obj)
    return not clip or pdfium_c.FPDFClipPath_CountPaths(clip) <= 0


#: A turn: whether the image's rows become the bitmap's columns, then a left-right and a
#: top-bottom flip.
Turn = tuple[bool, bool, bool]


def _turn(image: pdfium.PdfImage, page: pdfium.PdfPage, scale: float) -> Turn | None:
    """How the image's pixels land on the bitmap, if it covers the page's box axis-aligned.

    In image space a pixel's column runs along the matrix's (a, b) and its row (downwards) along
    (-c, -d); on the bitmap, page y points up, and the page's ``/Rotate`` turns it clockwise.
    """
    a, b, c, d, _e, _f = image.get_matrix().get()
    big = max(abs(a), abs(b), abs(c), abs(d))
    if big == 0:
        return None
    straight = abs(b) <= 1e-6 * big and abs(c) <= 1e-6 * big
    crossed = abs(a) <= 1e-6 * big and abs(d) <= 1e-6 * big
    if straight == crossed:
        return None  # skewed or turned by other than a multiple of 90 degrees
    tol = EDGE_TOLERANCE_PX / scale
    if any(abs(x - y) > tol for x, y in zip(image.get_bounds(), page.get_bbox(), strict=True)):
        return None
    column, row = (a, -b), (-c, d)  # on an unturned bitmap (y down)
    for _ in range(page.get_rotation() // 90 % 4):
        column, row = (-column[1], column[0]), (-row[1], row[0])  # a quarter turn clockwise
    if column[0] != 0 and abs(column[0]) > abs(column[1]):
        return False, column[0] < 0, row[1] < 0
    return True, row[0] < 0, column[1] < 0


def _apply_turn(image: Image.Image, turn: Turn) -> Image.Image:
    swap, flip_x, flip_y = turn
    if swap:
        image = image.transpose(Image.Transpose.TRANSPOSE)
    if flip_x:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if flip_y:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return image


def _decode(
    raw: bytes, mode: str, pixels: tuple[int, int], needed: tuple[int, int],
    outputs: Sequence[OutputSpec], limits: RenderLimits,
) -> Image.Image | None:  # fmt: skip
    """The JPEG decoded with DCT scaling to at least ``needed``, or ``None`` where PDFium should
    decide: not a plain JFIF JPEG of the dictionary's size and colour space, over the pixel guard
    or the memory budget (PDFium's own failure is then today's outcome), or undecodable."""
    try:
        jpeg = Image.open(io.BytesIO(raw), formats=["JPEG"])
        if jpeg.size != pixels or jpeg.mode != mode or "adobe" in jpeg.info:
            return None
        check_pixels(jpeg.width, jpeg.height, limits.max_pixels)
        held = 0
        if jpeg.info.get("progressive"):
            held = jpeg_coefficient_bytes(jpeg.width, jpeg.height, sampling(jpeg))
        jpeg.draft(mode, needed)
        if jpeg.width < needed[0] or jpeg.height < needed[1]:
            return None
        check_memory(jpeg.width, jpeg.height, "JPEG", outputs, limits, held_bytes=held)
        jpeg.load()
    except BudgetExceeded:
        return None  # over a guard: PDFium's own failure (or render) is then today's outcome
    except MemoryError:
        raise  # the render process's limit: reported with the budget by worker.render.child
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return None  # PDFium renders (or refuses) a damaged image its own way, as before
    return jpeg
