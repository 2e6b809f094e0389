"""The first page of a PDF, rasterised with pypdfium2 and then resized like any raster image."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import pypdfium2 as pdfium
from PIL import Image, ImageChops

from worker.errors import RenderError
from worker.render.limits import RenderLimits, check_memory, check_pixels
from worker.render.pdf_scan import scanned_page
from worker.render.raster import encode, resize_all
from worker.render.registry import OutputSpec, Rendition, register

MAX_SCALE = 4.0
#: Whether a page that is one JPEG (a scan) is decoded from the JPEG at the size needed instead of
#: by PDFium at full size (``worker.render.pdf_scan``); off only to measure and test against PDFium.
SCANS_FROM_JPEG = True
# PDFium is not thread-safe. Each render process renders one job at a time (so PDFs render in
# parallel across processes); the lock keeps in-process callers (tests, tools) safe too.
_PDFIUM_LOCK = threading.Lock()


@register("application/pdf")
def render_pdf(data: bytes, outputs: Sequence[OutputSpec], limits: RenderLimits) -> list[Rendition]:
    """Render page 1 at the size the largest rendition needs, then produce each rendition.

    The largest is the page bitmap itself; the smaller ones are resized from the smallest larger
    one (``resize_all``), as for a raster source. A page whose every pixel is grey (most text)
    is resized as its one band and each rendition made RGB again: the same pixels as resizing
    all three bands alike, for a third of the resize (docs/throughput.md, issue 34).
    """
    with _PDFIUM_LOCK:
        page = _rasterise_first_page(data, outputs, limits)
    grey = page if page.mode == "L" else grey_band(page)
    if grey is None:
        return [encode(resized, out) for resized, out in zip(resize_all(page, outputs), outputs, strict=True)]
    return [
        encode(page if resized is grey and page.mode == "RGB" else resized.convert("RGB"), out)
        for resized, out in zip(resize_all(grey, outputs), outputs, strict=True)
    ]


def grey_band(image: Image.Image) -> Image.Image | None:
    """The red band of an RGB image whose every pixel has equal red, green and blue, else ``None``."""
    red, green, blue = image.split()
    if ImageChops.difference(red, green).getbbox() or ImageChops.difference(green, blue).getbbox():
        return None
    return red


def _rasterise_first_page(data: bytes, outputs: Sequence[OutputSpec], limits: RenderLimits) -> Image.Image:
    """Page 1's bitmap: RGB, or L for a scan whose JPEG is grey (``worker.render.pdf_scan``)."""
    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        # PDFium's last-error code is process-global and can be stale, so it is not trusted here;
        # it also refuses zero-page documents outright.
        if b"/Encrypt" in data:
            raise RenderError("PDF is encrypted (password required)") from None
        raise RenderError("PDF cannot be opened: it has no pages or is damaged") from None
    try:
        if len(doc) == 0:
            raise RenderError("PDF has no pages")
        page = doc[0]
        try:
            pw, ph = page.get_size()
            if pw <= 0 or ph <= 0:
                raise RenderError("PDF page 1 has no area")
            scale = render_scale(pw, ph, outputs)
            width, height = round(pw * scale), round(ph * scale)
            check_pixels(width, height, limits.max_pixels)
            check_memory(width, height, "PDF", outputs, limits)
            if SCANS_FROM_JPEG:
                scanned = scanned_page(data, doc, page, scale, outputs, limits)
                if scanned is not None:
                    return scanned
            bitmap = page.render(scale=scale)
            try:
                image: Image.Image = bitmap.to_pil().convert("RGB")
                return image
            finally:
                bitmap.close()
        finally:
            page.close()
    finally:
        doc.close()


#: How much :func:`render_scale` is nudged down: pypdfium2 sizes the bitmap ``ceil(points * scale)``,
#: and a float error upwards would add a pixel, and with it a resize of the whole page.
SCALE_NUDGE = 1e-9
#: The margin over the largest rendition when the page cannot be rendered at exactly its size (a
#: ``cover`` rendition, which is cropped anyway, or a page so narrow that no one scale rounds both
#: sides to the rendition's): the rendition is then resized from a slightly larger bitmap.
SCALE_MARGIN = 1.01


def render_scale(pw: float, ph: float, outputs: Sequence[OutputSpec]) -> float:
    """Points-to-pixels scale at which page 1 just covers the largest rendition (capped at 4x = 288 dpi).

    A page is vector, so unlike a raster source it is rendered large enough for ``contain``
    renditions to reach their box. Where it can, it is rendered at exactly the largest ``contain``
    rendition's size (``pw`` x ``ph`` scaled to the box, rounded), which then needs no resize: a
    1 % margin here cost a resize of the whole page from 1293 to 1280 px, about a fifth of a text
    page's render (docs/throughput.md, issue 34).
    """
    pick = {"contain": min, "cover": max}
    largest = max(outputs, key=lambda o: pick[o.fit](o.width / pw, o.height / ph))
    scale = pick[largest.fit](largest.width / pw, largest.height / ph)
    if largest.fit == "contain" and scale <= MAX_SCALE:
        width, height = max(1, round(pw * scale)), max(1, round(ph * scale))
        exact = min(width / pw, height / ph) * (1 - SCALE_NUDGE)
        if (math.ceil(pw * exact), math.ceil(ph * exact)) == (width, height):
            return exact
    return min(MAX_SCALE, scale * SCALE_MARGIN)
