"""Rendering real images and PDFs: every rendition decoded back and checked for format and size."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import worker_media as media
from worker_kit import decode_image

from worker.errors import PermanentJobError
from worker.render import OutputSpec, RenderLimits, media_types, render, sniff

PIL_FORMAT = {"webp": "WEBP", "png": "PNG", "jpeg": "JPEG"}
LIMITS = RenderLimits(50_000_000, 2**30)
OUTPUTS = [
    OutputSpec("thumb", "webp", 320, 320),
    OutputSpec("card", "jpeg", 200, 100, "cover"),
    OutputSpec("big", "png", 2000, 2000),
]


def check(renditions: Sequence[object], expected: dict[str, tuple[int, int]]) -> None:
    got = {}
    for r in renditions:
        image = decode_image(r.data)  # type: ignore[attr-defined]
        assert image.format == PIL_FORMAT[r.format]  # type: ignore[attr-defined]
        assert image.size == (r.width, r.height)  # type: ignore[attr-defined]
        got[r.name] = image.size  # type: ignore[attr-defined]
    assert got == expected


def test_registry_covers_every_kind() -> None:
    assert media_types() == ["application/pdf", "image/gif", "image/jpeg", "image/png", "image/webp"]


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (media.jpeg(800, 600), "image/jpeg"),
        (media.png(800, 600), "image/png"),
        (media.webp(800, 600), "image/webp"),
        (media.gif(800, 600), "image/gif"),
    ],
)
def test_raster_kinds(data: bytes, media_type: str) -> None:
    kind, renditions = render(data, OUTPUTS, LIMITS)
    assert kind == media_type
    # contain fits inside the box and never upscales; cover is exactly the box.
    check(renditions, {"thumb": (320, 240), "card": (200, 100), "big": (800, 600)})


def test_large_jpeg_uses_draft_decoding() -> None:
    _kind, renditions = render(media.jpeg(4000, 3000), [OutputSpec("t", "webp", 320, 320)], LIMITS)
    check(renditions, {"t": (320, 240)})


def test_gif_first_frame() -> None:
    _, (r,) = render(media.gif(64, 32), [OutputSpec("f", "png", 64, 64)], LIMITS)
    image = decode_image(r.data).convert("RGB")
    assert image.size == (64, 32)
    assert image.getpixel((10, 10)) == (255, 0, 0)  # the first frame is red, later ones blue


@pytest.mark.parametrize(
    ("orientation", "size"), [(1, (300, 200)), (3, (300, 200)), (6, (200, 300)), (8, (200, 300))]
)
def test_exif_orientation_applied(orientation: int, size: tuple[int, int]) -> None:
    _, (r,) = render(media.jpeg(600, 400, orientation), [OutputSpec("o", "jpeg", 300, 300)], LIMITS)
    check([r], {"o": size})


def test_alpha_png_to_jpeg_and_webp() -> None:
    _, renditions = render(
        media.png(100, 50, alpha=True),
        [OutputSpec("j", "jpeg", 50, 50), OutputSpec("w", "webp", 50, 50)],
        LIMITS,
    )
    check(renditions, {"j": (50, 25), "w": (50, 25)})
    assert decode_image(renditions[1].data).mode == "RGBA"


def test_an_alpha_channel_with_nothing_transparent_is_dropped_and_the_renditions_are_the_same() -> None:
    from PIL import Image, ImageChops, ImageStat

    from worker.render import raster

    opaque = media.decode_png_rgba(media.png(300, 200))  # RGBA, every alpha 255
    data = media.encode(opaque, "PNG")
    outs = [OutputSpec("w", "webp", 120, 120), OutputSpec("p", "png", 60, 60)]
    assert raster.decode(data, outs, LIMITS).mode == "RGB"
    _, renditions = render(data, outs, LIMITS)
    for r, out in zip(renditions, outs, strict=True):  # what the RGBA path made, but for rounding
        made = decode_image(r.data)
        assert made.mode == "RGB"
        size = raster.target_size(300, 200, out)
        resized = opaque.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        before = decode_image(raster.encode(resized, out).data).convert("RGB")
        difference = ImageChops.difference(made, before)
        assert max(ImageStat.Stat(difference).mean) < 0.5, out  # Pillow premultiplies RGBA to 8 bits
        assert max(hi for _lo, hi in difference.getextrema()) <= 3, out
    translucent = media.png(300, 200, alpha=True)
    assert raster.decode(translucent, outs, LIMITS).mode == "RGBA"


def test_pdf_first_page() -> None:
    kind, renditions = render(media.pdf(612, 792), OUTPUTS, LIMITS)
    assert kind == "application/pdf"
    # A page is vector: contain reaches the box (612x792 pt scaled by 320/792 -> 247x320, by
    # 2000/792 -> 1545x2000).
    check(renditions, {"thumb": (247, 320), "card": (200, 100), "big": (1545, 2000)})


def test_a_pdf_page_is_rendered_at_exactly_its_largest_rendition_or_just_over_it() -> None:
    import math
    import random

    from worker.render.pdf import MAX_SCALE, render_scale

    rng = random.Random(34)
    exact = 0
    for _ in range(3000):
        pw, ph = rng.uniform(20, 3000), rng.uniform(20, 3000)
        box = rng.choice([64, 320, 640, 1280, 2000])
        outputs = [OutputSpec("l", "webp", box, box), OutputSpec("s", "webp", box // 4, box // 4)]
        scale = render_scale(pw, ph, outputs)
        bitmap = (math.ceil(pw * scale), math.ceil(ph * scale))  # how pypdfium2 sizes it
        fit = min(box / pw, box / ph)
        if fit > MAX_SCALE:
            assert scale == MAX_SCALE
            continue
        wanted = (max(1, round(pw * fit)), max(1, round(ph * fit)))
        exact += bitmap == wanted
        assert bitmap == wanted or (bitmap[0] >= wanted[0] and bitmap[1] >= wanted[1]), (pw, ph, box)
    assert exact > 2500  # nearly always no resize of the largest rendition


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "source is empty"),
        (b"hello world, not an image", "unsupported source type"),
        (media.jpeg(400, 300)[:300], "^source image is truncated$"),
        (media.png(400, 300)[:100], "^source image is truncated$"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20, "^source image is truncated$"),
        (b"\xff\xd8\xff" + b"\x00garbage" * 20, "cannot be identified"),
        (media.huge_png_header(), "50000x50000 = 2500000000 pixels, over the 50000000-pixel guard"),
        (media.empty_pdf(), "PDF cannot be opened: it has no pages or is damaged"),
        (media.encrypted_pdf(), "PDF is encrypted"),
        (b"%PDF-1.7\n garbage", "PDF cannot be opened"),
    ],
    ids=[
        "empty",
        "unknown",
        "truncated-jpeg",
        "truncated-png",
        "corrupt-png",
        "corrupt-jpeg",
        "bomb",
        "empty-pdf",
        "encrypted-pdf",
        "corrupt-pdf",
    ],
)
def test_bad_sources_fail_permanently(data: bytes, reason: str) -> None:
    with pytest.raises(PermanentJobError, match=reason):
        render(data, OUTPUTS, LIMITS)


def test_pdf_pixel_guard() -> None:
    with pytest.raises(PermanentJobError, match="pixel guard"):
        render(media.pdf(612, 792, pages=1), [OutputSpec("x", "png", 2000, 2000)], RenderLimits(100_000))


def test_sniff() -> None:
    assert sniff(media.webp(10, 10)) == "image/webp"
    assert sniff(media.pdf(100, 100, pages=1)) == "application/pdf"


def test_smaller_renditions_are_made_from_a_larger_one_and_look_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from PIL import Image, ImageChops, ImageStat

    from worker.render import raster

    outs = [
        OutputSpec.from_json({"name": n, "format": "png", "width": s, "height": s, "fit": f})
        for n, s, f in (
            ("s", 320, "contain"), ("c", 300, "cover"), ("l", 1280, "contain"), ("m", 640, "contain")
        )
    ]  # fmt: skip
    image = raster.decode(media.jpeg(4000, 3000), outs, RenderLimits(50_000_000, 2**30))
    sources: dict[tuple[int, int], tuple[int, int]] = {}
    real = raster.resize

    def recording(source: Image.Image, out: OutputSpec) -> Image.Image:
        made = real(source, out)
        sources[made.size] = source.size
        return made

    monkeypatch.setattr(raster, "resize", recording)
    cascaded = raster.resize_all(image, outs)
    assert [im.size for im in cascaded] == [(320, 240), (300, 300), (1280, 960), (640, 480)]
    assert sources == {  # each from the smallest whole frame at least twice its size (the crop, for cover)
        (1280, 960): image.size, (640, 480): (1280, 960), (320, 240): (640, 480), (300, 300): (1280, 960),
    }  # fmt: skip
    for made, out in zip(cascaded, outs, strict=True):
        direct = real(image, out)
        diff = ImageStat.Stat(ImageChops.difference(made, direct)).mean
        assert max(diff) < 2.0, (out.name, diff)  # mean difference under 2 of 255 per channel


def test_lossless_jpeg_is_decoded_whole_not_drafted() -> None:
    # libjpeg cannot scale a lossless frame: drafted, it failed with "broken data stream".
    from worker.render import raster

    data = media.lossless_jpeg(1600, 1200)
    assert raster.lossless_jpeg(data)
    _kind, (r,) = render(data, [OutputSpec("t", "webp", 320, 320)], LIMITS)
    image = decode_image(r.data).convert("L")
    assert image.size == (320, 240)
    assert image.getextrema() == (128, 128)


@pytest.mark.parametrize(
    ("data", "lossless"),
    [
        (media.jpeg(64, 48), False),
        (media.progressive_jpeg(64, 48), False),
        (media.jpeg(64, 48, orientation=6), False),  # an APP1 segment before the frame
        (b"\xff\xd8\xff\xff\xff\xc3\x00\x02", True),  # fill bytes, then a (truncated) SOF3
        (b"\xff\xd8\xff\xc3", False),  # too short to read
        (b"\xff\xd8junk", False),
    ],
)
def test_lossless_jpeg_reads_the_frame_marker(data: bytes, lossless: bool) -> None:
    from worker.render import raster

    assert raster.lossless_jpeg(data) is lossless
