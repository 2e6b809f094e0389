"""The quality half of the preview benchmark: SSIM on luma and the comparability rule (issue 34)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from bench.similarity import (
    BYTES_TOLERANCE,
    SSIM_TOLERANCE,
    Quality,
    comparable,
    luma,
    score,
    ssim,
)


def picture(size: tuple[int, int] = (160, 120)) -> Image.Image:
    """Edges, gradients and fine detail: what a resize or an encoder can lose."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    for i in range(0, size[0], 8):
        draw.line((i, 0, size[0] - i, size[1]), fill=(255, (i * 7) % 256, 0), width=2)
    draw.text((10, 10), "SSIM 0.995", fill=(0, 0, 0))
    return image


def test_identical_images_score_one() -> None:
    plane = luma(picture())
    assert ssim(plane, plane.copy()) == pytest.approx(1.0, abs=1e-12)


def test_a_shifted_or_blurred_image_scores_lower_and_more_blur_lower_still() -> None:
    original = picture()
    plane = luma(original)
    shifted = np.roll(plane, 1, axis=1)
    slight = luma(original.filter(ImageFilter.GaussianBlur(0.8)))
    strong = luma(original.filter(ImageFilter.GaussianBlur(3)))
    assert ssim(plane, shifted) < 0.99
    assert 0 < ssim(plane, strong) < ssim(plane, slight) < 0.999


def test_ssim_is_symmetric_and_ignores_a_constant_offset_less_than_structure() -> None:
    plane = luma(picture())
    noisy = plane + np.random.default_rng(1).normal(0, 12, plane.shape)
    assert ssim(plane, noisy) == pytest.approx(ssim(noisy, plane))
    assert ssim(plane, plane + 5) > ssim(plane, noisy)  # brightness shift vs. lost structure


def test_mismatched_or_tiny_images_are_refused_with_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"equal shapes.*\(120, 160\).*\(120, 159\)"):
        ssim(luma(picture()), luma(picture((159, 120))))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((8, 40)), np.zeros((8, 40)))


def test_transparency_is_scored_over_white_so_a_dropped_alpha_shows() -> None:
    cutout = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(cutout).ellipse((16, 16, 48, 48), fill=(20, 120, 200, 255))
    assert luma(cutout)[0, 0] == pytest.approx(255.0)  # transparent black shows as the page
    flattened_black = cutout.convert("RGB")  # what an encoder that drops alpha would show
    assert ssim(luma(cutout), luma(flattened_black)) < 0.5


def test_score_resizes_the_reference_to_the_rendition_and_counts_its_bytes() -> None:
    source = picture((640, 480))
    buf = io.BytesIO()
    source.resize((320, 240), Image.Resampling.LANCZOS).save(buf, "WEBP", quality=80)
    result = score(source, buf.getvalue())
    assert result["width"] == 320 and result["height"] == 240 and result["bytes"] == len(buf.getvalue())
    assert 0.9 < float(result["ssim"]) < 1.0 and result["alpha"] is False


@pytest.mark.parametrize(
    ("worker", "ok", "why"),
    [
        (Quality(0.950, 1000), True, ""),  # equal
        (Quality(0.950 - SSIM_TOLERANCE + 1e-9, 1000), True, ""),  # at the SSIM edge
        (Quality(0.950 - SSIM_TOLERANCE - 1e-4, 1000), False, "SSIM 0.9449 is below"),
        (Quality(0.950, round(1000 * (1 + BYTES_TOLERANCE))), True, ""),  # at the bytes edge
        (Quality(0.950, 1101), False, "10.1% more bytes"),
        (Quality(0.990, 1500), False, "50.0% more bytes"),  # better quality bought with bytes
        (Quality(0.990, 600), True, ""),  # smaller and better: not worse output
    ],
)
def test_a_ratio_counts_only_when_the_output_is_no_worse(worker: Quality, ok: bool, why: str) -> None:
    verdict, reason = comparable(worker, Quality(0.950, 1000))
    assert verdict is ok
    assert why in reason and (reason == "") is ok


def test_the_blur_is_the_papers_separable_gaussian_window() -> None:
    from bench.similarity import SIGMA, WINDOW, _blur

    plane = np.random.default_rng(7).random((40, 57)) * 255
    t = np.arange(WINDOW) - WINDOW // 2
    window = np.outer(*(2 * [np.exp(-(t**2) / (2 * SIGMA**2))]))
    window /= window.sum()
    direct = np.array(
        [
            [float((plane[i : i + WINDOW, j : j + WINDOW] * window).sum()) for j in range(57 - WINDOW + 1)]
            for i in range(40 - WINDOW + 1)
        ]
    )
    assert np.allclose(_blur(plane), direct, rtol=0, atol=1e-9)


def test_a_memo_scores_every_side_against_one_reference_resize() -> None:
    source = picture((640, 480))
    renditions = []
    for quality in (80, 40):
        buf = io.BytesIO()
        source.resize((320, 240), Image.Resampling.LANCZOS).save(buf, "WEBP", quality=quality)
        renditions.append(buf.getvalue())
    memo: dict[tuple[int, int], np.ndarray] = {}
    with_memo = [score(source, r, memo) for r in renditions]
    assert with_memo == [score(source, r) for r in renditions]
    assert list(memo) == [(320, 240)]
    memo[(320, 240)] = memo[(320, 240)] * 0  # the memo is what is scored against
    assert float(score(source, renditions[0], memo)["ssim"]) < 0.1
