"""A scanned page decoded from its JPEG (``worker.render.pdf_scan``) against PDFium's own render.

Every page that takes the shortcut is rendered both ways and scored as the benchmark scores a
PDF (``bench.similarity``): each against PDFium's page at three times the size, resized down
with LANCZOS; the shortcut may score at most ``SSIM_TOLERANCE`` below PDFium's render, its
renditions be at most ``BYTES_TOLERANCE`` larger, and it must look like PDFium's page directly
(a flipped or turned picture scores far below). Every page it must not take falls back, and
then renders byte for byte as PDFium renders it.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pypdfium2 as pdfium
import pytest
import worker_media as media
from PIL import Image, ImageCms, ImageDraw

from bench.similarity import SSIM_TOLERANCE, Quality, comparable, luma, ssim
from worker.render import OutputSpec, RenderLimits, render
from worker.render import pdf as render_pdf
from worker.render.pdf import render_scale
from worker.render.pdf_scan import scanned_page

OUTPUTS = [OutputSpec("big", "webp", 400, 400), OutputSpec("small", "webp", 160, 160)]
LIMITS = RenderLimits(50_000_000, 2**30)
#: A scan at about 290 dpi of the default 300 x 420 pt page.
PIXELS = (1200, 1680)
#: How alike the shortcut's page and PDFium's must be, directly (identical pictures resampled by
#: two filters score about 0.99; the same picture mirrored scores under 0.5).
SAME_PICTURE = 0.97


def picture(size: tuple[int, int], mode: str = "RGB", seed: int = 1) -> Image.Image:
    """A page-like picture with nothing symmetric about it: a dark block top left, lines of
    'text' of random lengths, a gradient band at the bottom, paper grain."""
    w, h = size
    rng = random.Random(seed)
    image = Image.new("RGB", size, (238, 235, 226))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, w // 4, h // 7), fill=(25, 35, 95))
    for y in range(h // 5, h - h // 6, max(6, h // 70)):
        x = w // 12
        while x < w - w // 10:
            word = rng.randrange(w // 40, w // 10)
            draw.rectangle((x, y, x + word, y + max(2, h // 160)), fill=(40, 40, 40))
            x += word + w // 60
    for x in range(w):
        draw.line((x, h - h // 8, x, h), fill=(x * 255 // w, 120, 255 - x * 255 // w))
    grain = Image.effect_noise(size, 12).convert("RGB")
    return Image.blend(image, grain, 0.06).convert(mode)


def jpeg(size: tuple[int, int] = PIXELS, mode: str = "RGB", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    picture(size, mode).save(buf, "JPEG", quality=85, **kwargs)
    return buf.getvalue()


@contextmanager
def shortcut(on: bool) -> Iterator[None]:
    before = render_pdf.SCANS_FROM_JPEG
    render_pdf.SCANS_FROM_JPEG = on
    try:
        yield
    finally:
        render_pdf.SCANS_FROM_JPEG = before


def both_ways(
    data: bytes, limits: RenderLimits = LIMITS
) -> tuple[Image.Image | None, Image.Image, Image.Image]:
    """The shortcut's page (or ``None``), PDFium's, and PDFium's at 3x resized down (the reference)."""
    doc = pdfium.PdfDocument(data)
    try:
        page = doc[0]
        pw, ph = page.get_size()
        scale = render_scale(pw, ph, OUTPUTS)
        fast = scanned_page(data, doc, page, scale, OUTPUTS, limits)
        rendered = page.render(scale=scale).to_pil().convert("RGB")
        fine = page.render(scale=scale * 3).to_pil().convert("RGB")
        return fast, rendered, fine.resize(rendered.size, Image.Resampling.LANCZOS)
    finally:
        doc.close()


W, H = 300, 420
SAME_PICTURE_CASES = {
    "upright": media.scan_pdf(jpeg(), PIXELS),
    "grey": media.scan_pdf(jpeg(mode="L"), PIXELS, color_space=b"/DeviceGray"),
    "progressive": media.scan_pdf(jpeg(progressive=True), PIXELS),
    "page-rotated-90": media.scan_pdf(jpeg(), PIXELS, rotate=90),
    "page-rotated-180": media.scan_pdf(jpeg(), PIXELS, rotate=180),
    "page-rotated-270": media.scan_pdf(jpeg(), PIXELS, rotate=270),
    "mirrored": media.scan_pdf(jpeg(), PIXELS, matrix=(-W, 0, 0, H, W, 0)),
    "upside-down": media.scan_pdf(jpeg(), PIXELS, matrix=(W, 0, 0, -H, 0, H)),
    "turned-left": media.scan_pdf(jpeg(PIXELS[::-1]), PIXELS[::-1], matrix=(0, H, -W, 0, W, 0)),
    "turned-right": media.scan_pdf(jpeg(PIXELS[::-1]), PIXELS[::-1], matrix=(0, -H, W, 0, 0, H)),
    "turned-and-page-rotated": media.scan_pdf(
        jpeg(PIXELS[::-1]), PIXELS[::-1], matrix=(0, -H, W, 0, 0, H), rotate=90
    ),
    "ocr-layer-after": media.scan_pdf(
        jpeg(), PIXELS, content_after=b"BT 3 Tr /F1 14 Tf 30 300 Td (invisible recognised words) Tj ET"
    ),
    "ocr-layer-before": media.scan_pdf(
        jpeg(), PIXELS, content_before=b"BT 3 Tr /F1 14 Tf 30 300 Td (invisible recognised words) Tj ET"
    ),
    "pillow-writer": media.encode(picture(PIXELS), "PDF", resolution=290.0, quality=85),
}


@pytest.mark.parametrize("case", sorted(SAME_PICTURE_CASES))
def test_the_shortcut_draws_the_page_pdfium_draws(case: str) -> None:
    fast, rendered, reference = both_ways(SAME_PICTURE_CASES[case])
    assert fast is not None, "the shortcut was not taken"
    assert fast.mode == ("L" if case == "grey" else "RGB") and fast.size == rendered.size
    assert ssim(luma(rendered), luma(fast)) >= SAME_PICTURE
    ours, pdfiums = ssim(luma(reference), luma(fast)), ssim(luma(reference), luma(rendered))
    assert ours >= pdfiums - SSIM_TOLERANCE, (ours, pdfiums)


def test_a_mirrored_picture_would_fail_the_test() -> None:
    """The same-picture bound can fail: the page mirrored scores far below it."""
    fast, rendered, _ = both_ways(SAME_PICTURE_CASES["upright"])
    assert fast is not None
    assert ssim(luma(rendered), luma(fast.transpose(Image.Transpose.FLIP_LEFT_RIGHT))) < SAME_PICTURE


def blocks(size: tuple[int, int], seed: int = 3) -> bytes:
    """A JPEG of 6 x 8 flat blocks of random colours: sharp edges that any filter puts in one place."""
    rng = random.Random(seed)
    w, h = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for i in range(6):
        for j in range(8):
            colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            draw.rectangle((i * w // 6, j * h // 8, (i + 1) * w // 6 - 1, (j + 1) * h // 8 - 1), fill=colour)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def test_any_page_size_origin_and_rotation_gives_pdfiums_picture() -> None:
    """Pages of odd sizes at odd origins, turned: the bitmap's last column is only partly covered,
    the page's corner is not at 0, the image is squeezed unevenly. PDFium stretches the image over
    every pixel its rectangle touches, and so does the shortcut: its block edges are where
    PDFium's are (closer than the same picture moved by one pixel either way), and it scores at
    least as well against PDFium's supersampled page (PDFium's own render aliases when an image
    is squeezed hard, so the two need not be alike pixel for pixel)."""
    rng = random.Random(34)
    image = blocks((900, 1100))
    for _ in range(12):
        page = (rng.uniform(60, 700), rng.uniform(60, 700))
        origin = (rng.choice([0, rng.uniform(-300, 300)]), rng.choice([0, rng.uniform(-300, 300)]))
        rotate = rng.choice([0, 90, 180, 270])
        fast, rendered, reference = both_ways(
            media.scan_pdf(image, (900, 1100), page=page, origin=origin, rotate=rotate)
        )
        assert fast is not None and fast.size == rendered.size
        theirs, ours = luma(rendered), luma(fast)
        apart = np.abs(theirs - ours).mean()
        moved = [np.abs(theirs - np.roll(ours, step, axis)).mean() for step in (-1, 1) for axis in (0, 1)]
        assert apart < min(moved), (page, origin, rotate, apart, moved)
        assert ssim(luma(reference), ours) >= ssim(luma(reference), theirs) - SSIM_TOLERANCE


@pytest.mark.parametrize("case", ["upright", "page-rotated-90", "turned-right", "pillow-writer"])
def test_renditions_are_equal_output_by_the_benchmarks_rule(case: str) -> None:
    data = SAME_PICTURE_CASES[case]
    _, _, reference = both_ways(data)
    with shortcut(False):
        _, slow = render(data, OUTPUTS, LIMITS)
    with shortcut(True):
        _, fast = render(data, OUTPUTS, LIMITS)
    for ours, pdfiums in zip(fast, slow, strict=True):
        assert (ours.width, ours.height) == (pdfiums.width, pdfiums.height)
        ref = luma(reference.resize((ours.width, ours.height), Image.Resampling.LANCZOS))
        ok, why = comparable(
            Quality(ssim(ref, luma(Image.open(io.BytesIO(ours.data)))), len(ours.data)),
            Quality(ssim(ref, luma(Image.open(io.BytesIO(pdfiums.data)))), len(pdfiums.data)),
        )
        assert ok, f"{ours.name}: {why}"


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # type: ignore[no-any-return]


def _stream(body: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s >>\nstream\n" % (len(body), extra) + body + b"\nendstream"


_GREY_MASK = _stream(
    jpeg((60, 84), "L"),
    b"/Type /XObject /Subtype /Image /Width 60 /Height 84 /BitsPerComponent 8 /ColorSpace /DeviceGray "
    b"/Filter /DCTDecode",
)
_SQUARE = b"<< /Type /Annot /Subtype /Square /Rect [20 20 120 120] /C [1 0 0] /Border [0 0 4] >>"
_TEXT = b"BT /F1 14 Tf 30 300 Td (visible words) Tj ET"
_CLIPPING_TEXT = b"BT 7 Tr /F1 40 Tf 30 200 Td (clip) Tj ET"
_CAL_RGB = b"[/CalRGB << /WhitePoint [0.9505 1 1.089] /Gamma [1.8 1.8 1.8] >>]"
_IMAGE = jpeg()
FALLBACK_CASES = {
    "smaller-than-the-page": media.scan_pdf(_IMAGE, PIXELS, matrix=(W * 0.8, 0, 0, H * 0.8, 20, 30)),
    "larger-than-the-page": media.scan_pdf(_IMAGE, PIXELS, matrix=(W * 1.1, 0, 0, H * 1.1, -15, -21)),
    "skewed": media.scan_pdf(
        _IMAGE,
        PIXELS,
        matrix=(W * math.cos(0.1), W * math.sin(0.1), -H * math.sin(0.1), H * math.cos(0.1), 40, 0),
    ),
    "crop-box-inside-the-image": media.scan_pdf(_IMAGE, PIXELS, page_extra=b"/CropBox [20 20 280 400]"),
    "soft-mask": media.scan_pdf(_IMAGE, PIXELS, image_extra=b"/SMask 7 0 R", extra_objects=(_GREY_MASK,)),
    "colour-key-mask": media.scan_pdf(_IMAGE, PIXELS, image_extra=b"/Mask [200 255 200 255 200 255]"),
    "decode-array": media.scan_pdf(_IMAGE, PIXELS, image_extra=b"/Decode [1 0 1 0 1 0]"),
    "interpolate": media.scan_pdf(_IMAGE, PIXELS, image_extra=b"/Interpolate true"),
    "decode-parms": media.scan_pdf(_IMAGE, PIXELS, image_extra=b"/DecodeParms << /ColorTransform 0 >>"),
    "escaped-soft-mask": media.scan_pdf(
        _IMAGE, PIXELS, image_extra=b"/S#4dask 7 0 R", extra_objects=(_GREY_MASK,)
    ),
    "soft-mask-behind-a-comment": media.scan_pdf(
        _IMAGE, PIXELS, image_extra=b"/SMask 7 0 R % 5 0 obj <<\n/Name /Im0", extra_objects=(_GREY_MASK,)
    ),
    "cmyk": media.scan_pdf(jpeg(mode="CMYK"), PIXELS, color_space=b"/DeviceCMYK"),
    "icc-based": media.scan_pdf(
        _IMAGE, PIXELS, color_space=b"[/ICCBased 7 0 R]", extra_objects=(_stream(_srgb_icc(), b"/N 3"),)
    ),
    "default-rgb": media.scan_pdf(
        _IMAGE, PIXELS, resources_extra=b"/ColorSpace << /DefaultRGB %s >>" % _CAL_RGB
    ),
    "grey-jpeg-said-to-be-rgb": media.scan_pdf(jpeg(mode="L"), PIXELS),
    "size-not-the-jpegs": media.scan_pdf(_IMAGE, (1000, 1400)),
    "a-rectangle-too": media.scan_pdf(_IMAGE, PIXELS, content_after=b"0 0 1 rg 10 10 80 60 re f"),
    "visible-text-too": media.scan_pdf(_IMAGE, PIXELS, content_after=_TEXT),
    "clipping-text-before": media.scan_pdf(_IMAGE, PIXELS, content_before=_CLIPPING_TEXT),
    "clip-path": media.scan_pdf(_IMAGE, PIXELS, content_before=b"20 20 200 300 re W n"),
    "annotation": media.scan_pdf(_IMAGE, PIXELS, page_extra=b"/Annots [7 0 R]", extra_objects=(_SQUARE,)),
    "transfer-function": media.scan_pdf(
        _IMAGE, PIXELS, content_before=b"/G0 gs", resources_extra=b"/ExtGState << /G0 << /TR /Identity >> >>"
    ),
    "fill-alpha": media.scan_pdf(
        _IMAGE, PIXELS, content_before=b"/G0 gs", resources_extra=b"/ExtGState << /G0 << /ca 0.5 >> >>"
    ),
    "drawn-twice": media.scan_pdf(_IMAGE, PIXELS, content_after=b"q 150 0 0 210 0 0 cm /Im0 Do Q"),
    "its-bytes-twice-in-the-file": media.scan_pdf(_IMAGE, PIXELS, extra_objects=(_stream(_IMAGE),)),
    "marked-content": media.scan_pdf(_IMAGE, PIXELS, content_before=b"/Artifact BMC", content_after=b"EMC"),
    "truncated-jpeg": media.scan_pdf(_IMAGE[: len(_IMAGE) // 2], PIXELS),
    "not-a-jpeg": media.scan_pdf(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40, PIXELS),
    "an-adobe-jpeg": media.scan_pdf(jpeg(mode="CMYK"), PIXELS, color_space=b"/DeviceRGB"),
}


@pytest.mark.parametrize("case", sorted(FALLBACK_CASES))
def test_a_page_that_is_not_just_a_plain_jpeg_is_rendered_by_pdfium(case: str) -> None:
    data = FALLBACK_CASES[case]
    fast, _, _ = both_ways(data)
    assert fast is None
    assert _outcome(data, on=True) == _outcome(data, on=False)


def _outcome(data: bytes, on: bool, limits: RenderLimits = LIMITS) -> object:
    with shortcut(on):
        try:
            return render(data, OUTPUTS, limits)
        except Exception as err:
            return type(err), str(err)


def test_over_the_pixel_guard_or_the_budget_pdfium_decides_as_before() -> None:
    """A JPEG over the pixel guard (but a page bitmap under it), or one whose decode would be over
    the memory budget, is left to PDFium: the outcome is today's."""
    for case, limits in [
        ("upright", RenderLimits(PIXELS[0] * PIXELS[1] - 1, 2**30)),
        # a progressive JPEG holds its coefficients (about 6 MiB here); the page bitmap fits 4 MiB
        ("progressive", RenderLimits(50_000_000, 4 * 2**20)),
    ]:
        data = SAME_PICTURE_CASES[case]
        fast, _, _ = both_ways(data, limits)
        assert fast is None
        assert _outcome(data, True, limits) == _outcome(data, False, limits)


def test_the_shortcut_is_taken_on_the_corpus_kind_it_is_for() -> None:
    """The benchmark's pdf-scan pages are Pillow's: without the shortcut the test above proves nothing."""
    assert both_ways(SAME_PICTURE_CASES["pillow-writer"])[0] is not None
