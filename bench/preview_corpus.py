"""The preview benchmark's corpus: generated files that look like real uploads, nothing downloaded.

One folder per kind (:data:`KINDS`): camera JPEGs of 12, 18 and 24 MP with EXIF orientations,
phone-style progressive JPEGs, PNG screenshots with text, transparent PNGs, animated GIFs and
WebPs (the first frame is rendered), and PDFs of three kinds (text-heavy, vector drawings, a
scanned page that is one big image). Each kind has up to :data:`VARIANTS` distinct files; the
rest are copies, since the cost of a decode does not depend on which pixels it decodes. The
corpus is cached under ``~/.cache/mobius-preview-worker/bench-corpus/v2-<count>``.
"""

from __future__ import annotations

import io
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from bench.pdf_writer import WORDS, pdf_bytes

CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mobius-preview-worker" / "bench-corpus"
)
VARIANTS = 3  # distinct files per kind
RASTER_KINDS = ("camera-jpeg", "phone-jpeg", "screenshot-png", "alpha-png", "anim-gif", "anim-webp")
PDF_KINDS = ("pdf-text", "pdf-vector", "pdf-scan")
KINDS = RASTER_KINDS + PDF_KINDS
EXTENSIONS = {
    "camera-jpeg": "jpg", "phone-jpeg": "jpg", "screenshot-png": "png", "alpha-png": "png",
    "anim-gif": "gif", "anim-webp": "webp", "pdf-text": "pdf", "pdf-vector": "pdf", "pdf-scan": "pdf",
}  # fmt: skip


def parse_kinds(text: str) -> tuple[str, ...]:
    """The corpus kinds of a comma-separated ``--kinds`` value; ValueError naming any unknown one."""
    kinds = tuple(k.strip() for k in text.split(","))
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"bad --kinds {unknown}: the kinds are {', '.join(KINDS)}")
    return kinds


def corpus(per_kind: int) -> Path:
    """Generate (or reuse from the cache) ``per_kind`` files of every kind; returns the root."""
    if per_kind < 1:
        raise ValueError("the corpus needs at least one file per kind")
    root = CACHE / f"v2-{per_kind}"
    done = root / ".complete"
    if done.exists():
        return root
    for kind in KINDS:
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        ext = EXTENSIONS[kind]
        for i in range(per_kind):
            target = folder / f"{i:04d}.{ext}"
            if i < VARIANTS:
                target.write_bytes(MAKERS[kind](i))
            else:
                shutil.copyfile(folder / f"{i % VARIANTS:04d}.{ext}", target)
    done.touch()
    return root


def files(root: Path, kind: str) -> list[Path]:
    """One kind's files, sorted."""
    return sorted(p for p in (root / kind).iterdir() if p.is_file())


def distinct(root: Path, kind: str) -> list[Path]:
    """The distinct files of one kind (the rest are copies of these)."""
    return files(root, kind)[:VARIANTS]


def _photo(w: int, h: int, seed: int) -> Image.Image:
    """Smooth gradients, soft shapes and sensor-like grain: compresses like a photo."""
    rng = random.Random(seed)
    base = Image.merge(
        "RGB",
        [
            Image.linear_gradient("L").resize((w, h)),
            Image.radial_gradient("L").resize((w, h)),
            Image.linear_gradient("L").rotate(90).resize((w, h)),
        ],
    )
    draw = ImageDraw.Draw(base)
    for _ in range(60):
        x, y, r = rng.randrange(w), rng.randrange(h), rng.randrange(w // 40, w // 6)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    base = base.filter(ImageFilter.GaussianBlur(w / 400))
    draw = ImageDraw.Draw(base)
    for _ in range(400):  # sharp detail: twigs, edges, text on signs
        x, y = rng.randrange(w), rng.randrange(h)
        draw.line((x, y, x + rng.randrange(-w // 20, w // 20), y + rng.randrange(-h // 20, h // 20)),
                  fill=(rng.randrange(256),) * 3, width=rng.randrange(1, 6))  # fmt: skip
    grain = Image.effect_noise((w, h), 40).convert("RGB")
    return Image.blend(base, grain, 0.2)


def _jpeg(image: Image.Image, orientation: int, **save: object) -> bytes:

    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Mobius Bench Camera"
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif, **save)
    return buf.getvalue()


def camera_jpeg(i: int) -> bytes:
    """A 12, 18 or 24 MP baseline JPEG at quality 92 with EXIF orientation 1, 6 or 8."""
    size = ((4000, 3000), (5184, 3456), (6000, 4000))[i % 3]
    return _jpeg(_photo(*size, seed=i), (1, 6, 8)[i % 3], quality=92, subsampling="4:2:0")


def phone_jpeg(i: int) -> bytes:
    """A 12 MP progressive JPEG at quality 85 (portrait or landscape), EXIF orientation 6, 1 or 3."""
    size = ((4032, 3024), (3024, 4032), (4032, 3024))[i % 3]
    return _jpeg(
        _photo(*size, seed=100 + i), (6, 1, 3)[i % 3], quality=85, progressive=True, subsampling="4:2:0"
    )


def _text_lines(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], size: int, seed: int) -> None:
    rng = random.Random(seed)
    font = ImageFont.load_default(size)
    x0, y0, x1, y1 = box
    y = y0
    while y + size < y1:
        words, line = rng.randrange(3, 14), []
        for _ in range(words):
            line.append(rng.choice(WORDS))
        draw.text((x0, y), " ".join(line)[: (x1 - x0) // (size // 2)], fill=(30, 30, 30), font=font)
        y += int(size * 1.6)


def screenshot_png(i: int) -> bytes:
    """A desktop (2560x1440) or phone (1170x2532) screenshot: flat UI, text, a photo thumbnail."""

    w, h = ((2560, 1440), (1170, 2532), (1920, 1080))[i % 3]
    image = Image.new("RGB", (w, h), (246, 247, 249))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, w, h // 18), fill=(40, 44, 52))
    side = w // 6 if w > h else 0
    if side:
        draw.rectangle((0, h // 18, side, h), fill=(228, 231, 236))
        _text_lines(draw, (20, h // 18 + 20, side - 10, h), 18, seed=i)
    _text_lines(draw, (side + 40, h // 18 + 40, w - 40, h * 2 // 3), 16 + 4 * (i % 2), seed=10 + i)
    image.paste(_photo(w // 4, h // 5, seed=i).convert("RGB"), (side + 40, h * 2 // 3 + 20))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def alpha_png(i: int) -> bytes:
    """A 2048x2048 (or 1600x2400) cut-out on a transparent background with soft edges."""

    w, h = ((2048, 2048), (1600, 2400), (2048, 2048))[i % 3]
    rng = random.Random(200 + i)
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(6):
        x, y, r = (
            rng.randrange(w // 4, 3 * w // 4),
            rng.randrange(h // 4, 3 * h // 4),
            rng.randrange(w // 8, w // 4),
        )
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)  # fmt: skip
    mask = mask.filter(ImageFilter.GaussianBlur(6))
    image = _photo(w, h, seed=200 + i).convert("RGBA")
    image.putalpha(mask)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _frames(w: int, h: int, count: int, seed: int) -> list[Image.Image]:
    base = _photo(w, h, seed)
    frames = []
    for f in range(count):
        frame = base.copy()
        draw = ImageDraw.Draw(frame)
        x = (f * w // count) % w
        draw.ellipse(
            (x, h // 3, x + w // 6, h // 3 + h // 4), fill=(250, 200, 40), outline=(0, 0, 0), width=4
        )
        frames.append(frame)
    return frames


def anim_gif(i: int) -> bytes:
    """An animated GIF, 12 frames of 1000x750 (or 800x600), palette per frame."""

    w, h = ((1000, 750), (800, 600), (1000, 750))[i % 3]
    frames = [f.quantize(256, method=Image.Quantize.FASTOCTREE) for f in _frames(w, h, 12, seed=300 + i)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    return buf.getvalue()


def anim_webp(i: int) -> bytes:
    """An animated lossy WebP, 8 frames of 1200x900 (or 900x1200) at quality 80."""

    w, h = ((1200, 900), (900, 1200), (1200, 900))[i % 3]
    frames = _frames(w, h, 8, seed=400 + i)
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=80, quality=80)
    return buf.getvalue()


def pdf_scan(i: int) -> bytes:
    """A scanned A4 page at 300 dpi: one 2480x3508 JPEG image on the page, as scanners write."""

    w, h = 2480, 3508
    rng = random.Random(500 + i)
    page = Image.new("RGB", (w, h), (238, 236, 228))
    draw = ImageDraw.Draw(page)
    _text_lines(draw, (200, 250, w - 200, h - 250), 42, seed=500 + i)
    for _ in range(3000):  # specks and paper texture
        x, y = rng.randrange(w), rng.randrange(h)
        draw.point((x, y), fill=(rng.randrange(150, 220),) * 3)
    page = page.rotate(0.4 * (i % 3 - 1), fillcolor=(238, 236, 228), resample=Image.Resampling.BILINEAR)
    grain = Image.effect_noise((w, h), 8).convert("RGB")
    page = Image.blend(page, grain, 0.05)
    buf = io.BytesIO()
    page.save(buf, "PDF", resolution=300.0, quality=85)
    return buf.getvalue()


def pdf_text(i: int) -> bytes:
    """A three-page A4 document of dense text in the base-14 fonts (not embedded)."""
    return pdf_bytes("text", pages=3, seed=600 + i)


def pdf_vector(i: int) -> bytes:
    """A one-page A3 landscape drawing: thousands of stroked and filled paths, curves and labels."""
    return pdf_bytes("vector", pages=1, seed=700 + i)


MAKERS: dict[str, Callable[[int], bytes]] = {
    "camera-jpeg": camera_jpeg,
    "phone-jpeg": phone_jpeg,
    "screenshot-png": screenshot_png,
    "alpha-png": alpha_png,
    "anim-gif": anim_gif,
    "anim-webp": anim_webp,
    "pdf-text": pdf_text,
    "pdf-vector": pdf_vector,
    "pdf-scan": pdf_scan,
}
