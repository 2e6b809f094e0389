"""A grey page (most text) is resized as one band instead of three, and renders the same bytes.

Resizing an image whose red, green and blue are equal computes the same numbers three times:
``worker.render.pdf.render_pdf`` resizes the one band and makes each rendition RGB again, a
third of the resize of a text page (docs/throughput.md, issue 34). These render each page both
ways: the renditions must be byte for byte those of the three-band path, as it rendered before
(PDFium's BGR bitmap made RGB, every band resized), in every output format and fit.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import pypdfium2 as pdfium
import pytest
import worker_media as media
from PIL import Image

from worker.render import OutputSpec, RenderLimits
from worker.render import pdf as render_pdf
from worker.render.pdf_scan import scanned_page
from worker.render.raster import encode, resize_all

#: The largest is rendered at exactly its size (the page itself); a cropped one and a smaller one.
OUTPUTS = [
    OutputSpec("page", "webp", 400, 400),
    OutputSpec("card", "jpeg", 200, 100, "cover"),
    OutputSpec("thumb", "png", 150, 150),
]
LIMITS = RenderLimits(50_000_000, 2**30)
#: A scan of the default 300 x 420 pt page at about 290 dpi.
PIXELS = (1200, 1680)


def jpeg(mode: str = "RGB") -> bytes:
    return media.encode(media._image(*PIXELS).convert(mode), "JPEG", quality=85)


RED_MARK = b"1 0 0 rg 300 300 2 2 re f"
PAGES = {
    "text": (media.text_pdf(), "L"),
    "grey scan": (media.scan_pdf(jpeg(mode="L"), PIXELS, color_space=b"/DeviceGray"), "L"),
    "text with a red mark": (media.text_pdf(colour=RED_MARK), "RGB"),
    "colour scan": (media.scan_pdf(jpeg(), PIXELS), "RGB"),
    "colour page": (media.pdf(612, 792, pages=1), "RGB"),
}


def three_bands(data: bytes, outputs: Sequence[OutputSpec]) -> list[bytes]:
    """The renditions as rendered before: page 1 as RGB (PDFium's BGR bitmap converted, or the
    scan's page), every band resized."""
    doc = pdfium.PdfDocument(data)
    try:
        page = doc[0]
        scale = render_pdf.render_scale(*page.get_size(), outputs)
        scanned = scanned_page(data, doc, page, scale, outputs, LIMITS)
        image = (scanned or page.render(scale=scale).to_pil()).convert("RGB")
    finally:
        doc.close()
    resized = resize_all(image, outputs)
    return [encode(image, out).data for image, out in zip(resized, outputs, strict=True)]


@pytest.mark.parametrize("case", sorted(PAGES))
def test_a_page_renders_the_same_bytes_resized_as_one_band_or_three(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, resized_as = PAGES[case]
    modes: list[str] = []

    def spy(image: Image.Image, outputs: Sequence[OutputSpec]) -> list[Image.Image]:
        modes.append(image.mode)
        return resize_all(image, outputs)

    monkeypatch.setattr(render_pdf, "resize_all", spy)
    renditions = render_pdf.render_pdf(data, OUTPUTS, LIMITS)
    assert modes == [resized_as]  # one band only where every pixel is grey
    assert [r.data for r in renditions] == three_bands(data, OUTPUTS)
    for r in renditions:
        with Image.open(io.BytesIO(r.data)) as image:
            assert image.mode == "RGB"  # a grey page is still written in colour, as before


def test_grey_band_finds_one_pixel_of_colour() -> None:
    page = Image.new("RGB", (300, 200), (128, 128, 128))
    assert render_pdf.grey_band(page) is not None
    for pixel in ((129, 128, 128), (128, 127, 128), (128, 128, 255)):
        page.putpixel((299, 199), pixel)
        assert render_pdf.grey_band(page) is None, pixel
