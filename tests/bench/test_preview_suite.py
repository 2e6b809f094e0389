"""The preview benchmark's harness (issue 34): its corpus, its references and one tiny real run.

Not timed: these check that every kind of upload is what it claims to be, that every reference
really renders (pyvips service, vipsthumbnail, pdftoppm) and that the run reports speed, quality
and memory for each, not what the numbers are.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image

from bench import preview_suite
from bench.preview_corpus import KINDS, corpus, files
from bench.redis_kit import BenchRedis
from bench.vips_service import BOXES, from_ppm


@pytest.fixture(scope="module")
def root() -> Path:
    return corpus(1)  # cached: the first run on a machine generates it (about a minute)


@pytest.fixture(scope="module")
def redis() -> Iterator[BenchRedis]:
    with BenchRedis() as server:
        yield server


def one(root: Path, kind: str) -> Path:
    return files(root, kind)[0]


@pytest.mark.timeout(300)
def test_every_kind_of_upload_is_what_it_claims(root: Path) -> None:
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(KINDS)
    with Image.open(one(root, "camera-jpeg")) as cam:
        assert cam.format == "JPEG" and cam.width * cam.height >= 12_000_000
        assert cam.getexif()[0x0112] in (1, 6, 8) and not cam.info.get("progressive")
    with Image.open(one(root, "phone-jpeg")) as phone:
        assert phone.info.get("progressive") and phone.getexif()[0x0112] in (1, 3, 6)
    with Image.open(one(root, "screenshot-png")) as shot:
        assert shot.format == "PNG" and shot.mode == "RGB"
    with Image.open(one(root, "alpha-png")) as cutout:
        assert cutout.mode == "RGBA" and cutout.getchannel("A").getextrema() == (0, 255)
    for kind, fmt in (("anim-gif", "GIF"), ("anim-webp", "WEBP")):
        with Image.open(one(root, kind)) as anim:
            assert anim.format == fmt and getattr(anim, "n_frames", 1) > 1
    text = pdfium.PdfDocument(one(root, "pdf-text"))
    assert len(text) == 3 and len(text[0].get_textpage().get_text_range().split()) > 500
    vector = pdfium.PdfDocument(one(root, "pdf-vector"))
    assert sum(1 for o in vector[0].get_objects() if o.type == pdfium.raw.FPDF_PAGEOBJ_PATH) > 1000
    scan = pdfium.PdfDocument(one(root, "pdf-scan"))
    assert [o.type for o in scan[0].get_objects()] == [pdfium.raw.FPDF_PAGEOBJ_IMAGE]


def test_a_pdftoppm_page_reaches_libvips_intact(root: Path) -> None:
    ppm = subprocess.run(
        ["pdftoppm", "-f", "1", "-l", "1", "-singlefile", "-scale-to", "320", str(one(root, "pdf-text"))],
        check=True,
        capture_output=True,
    ).stdout
    expected = np.asarray(Image.open(io.BytesIO(ppm)).convert("L"), dtype=np.float64)
    image = from_ppm(ppm)
    del ppm  # the pixels must outlive the bytes they came from
    assert (image.height, image.width) == expected.shape
    assert image.colourspace("b-w").avg() == pytest.approx(expected.mean(), abs=0.5)


@pytest.mark.timeout(600)
def test_one_round_runs_the_worker_and_every_reference_and_scores_them(root: Path, redis: BenchRedis) -> None:
    result = preview_suite.compare(root, redis, rounds=1, kinds=("anim-gif", "pdf-text"))
    gif, pdf = result["kinds"]["anim-gif"], result["kinds"]["pdf-text"]
    assert set(gif["files_per_s"]) == {"worker", "pyvips", "vipsthumbnail"}
    assert set(pdf["files_per_s"]) == {"worker", "pdftoppm"}
    assert set(gif["ratios"]) == {"worker/pyvips", "worker/vipsthumbnail"} and set(pdf["ratios"]) == {
        "worker/pdftoppm"
    }
    for kind in (gif, pdf):
        assert all(v > 0 for v in kind["files_per_s"].values())
        for r in kind["ratios"].values():
            assert r["ratio"] > 0 and r["comparable"] is (r["why"] == "")
            assert r["met"] is (r["comparable"] and r["ratio"] >= r["target"])
        for impl, boxes in kind["quality"].items():
            assert list(boxes) == [str(b) for b in BOXES], impl
            for box, q in boxes.items():
                # Real renditions of the real page or frame: close to the reference, inside the box.
                assert 0.85 < q["ssim"] <= 1.0 and q["bytes"] > 500, (impl, box, q)
                assert all(max(w, h) <= int(box) for w, h in q["sizes"]), (impl, box, q)
        assert all(kb > 10_000 for kb in kind["reference_rss_peak_kb"].values()), kind[
            "reference_rss_peak_kb"
        ]
    # The page came from each renderer, at the largest box on its long side.
    assert (
        pdf["quality"]["worker"]["1280"]["sizes"]
        == pdf["quality"]["pdftoppm"]["1280"]["sizes"]
        == [[905, 1280]]
    )
    assert result["worker"]["rss_peak_kb"] > 10_000 and result["worker"]["render_rss_peak_kb"] > 10_000
