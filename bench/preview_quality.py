"""Score every implementation's renditions of one kind (``bench.similarity``), per box size.

Rasters: every implementation is scored against the same reference, a LANCZOS resize of the full
decode (EXIF orientation applied, first frame). PDFs: the renderers differ (PDFium's and
poppler's fonts and anti-aliasing), and that difference is not what the rule is about, so each
is scored against its own renderer's page at :data:`SUPERSAMPLE` times the largest box, resized
down with LANCZOS: what a pipeline loses between its renderer and the WebP file.
"""

from __future__ import annotations

import io
import statistics
import subprocess
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
from PIL import Image

from bench.similarity import Quality, comparable, full_decode, score
from bench.vips_service import BOXES

SUPERSAMPLE = 3


def pdfium_page(path: Path, box: int) -> Image.Image:
    """Page 1 by PDFium with its long side at ``box`` pixels."""
    doc = pdfium.PdfDocument(path.read_bytes())
    try:
        page = doc[0]
        scale = box / max(page.get_size())
        image: Image.Image = page.render(scale=scale).to_pil().convert("RGB")
        return image
    finally:
        doc.close()


def poppler_page(path: Path, box: int) -> Image.Image:
    """Page 1 by ``pdftoppm`` with its long side at ``box`` pixels."""
    ppm = subprocess.run(
        ["pdftoppm", "-f", "1", "-l", "1", "-singlefile", "-scale-to", str(box), str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return Image.open(io.BytesIO(ppm)).convert("RGB")


def references(kind: str, sources: list[Path], impl: str) -> dict[str, Image.Image]:
    """The reference image per source stem for ``impl`` on ``kind``."""
    if not kind.startswith("pdf-"):
        return {p.stem: full_decode(p) for p in sources}
    render = poppler_page if impl == "pdftoppm" else pdfium_page
    return {p.stem: render(p, BOXES[0] * SUPERSAMPLE) for p in sources}


def measure(kind: str, sources: list[Path], outputs: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Per implementation and box: mean SSIM, total bytes and the sizes, over ``sources``.

    ``outputs`` maps an implementation to the folder of its ``<stem>_<box>.webp`` renditions.
    """
    shared = None if kind.startswith("pdf-") else references(kind, sources, "")
    shared_memo: dict[str, dict[tuple[int, int], Any]] = {p.stem: {} for p in sources}
    result: dict[str, dict[str, Any]] = {}
    for impl, folder in outputs.items():
        refs = shared or references(kind, sources, impl)
        # A raster's reference resizes are the same for every side; a PDF side has its own page.
        memo = shared_memo if shared else {p.stem: {} for p in sources}
        per_box: dict[str, Any] = {}
        for box in BOXES:
            scores = [
                score(refs[p.stem], (folder / f"{p.stem}_{box}.webp").read_bytes(), memo[p.stem])
                for p in sources
            ]
            per_box[str(box)] = {
                "ssim": statistics.fmean(float(s["ssim"]) for s in scores),
                "bytes": sum(int(s["bytes"]) for s in scores),
                "sizes": [[s["width"], s["height"]] for s in scores],
                "alpha": all(bool(s["alpha"]) for s in scores),
            }
        result[impl] = per_box
    return result


def verdict(quality: dict[str, dict[str, Any]], impl: str, reference: str) -> dict[str, Any]:
    """Whether ``impl``'s speed ratio over ``reference`` counts: every box must pass the rule."""
    for box in map(str, BOXES):
        a, b = quality[impl][box], quality[reference][box]
        ok, why = comparable(Quality(a["ssim"], a["bytes"]), Quality(b["ssim"], b["bytes"]))
        if not ok:
            return {"comparable": False, "why": f"{box} px box: {why}"}
    return {"comparable": True, "why": ""}
