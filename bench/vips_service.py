"""The references a team would write instead of this worker, one process per core.

``python -m bench.vips_service raster OUT`` is "a libvips service done right" (pyvips with
pyvips-binary, libvips 8.18): per source one shrink-on-load ``Image.thumbnail`` to the largest
box (never upscaling, EXIF orientation applied, first frame), kept in memory with
``copy_memory``, the smaller boxes resized from it, each written as WebP with the worker's
encoder settings (:data:`WEBP`). ``python -m bench.vips_service pdftoppm OUT`` rasterises each
PDF's first page with poppler's ``pdftoppm`` at the largest box (a PPM on a pipe) and writes the
same three WebPs with the same libvips code. pyvips-binary has no PDF loader, hence poppler.

Both print ``ready`` once imported, read source paths from stdin (one a line, to EOF), write
``OUT/<stem>_<box>.webp`` and end with one JSON line of their own peak RSS (KiB).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyvips

#: The rendition boxes, largest first: the worker's bench job asks for these (``fit: contain``).
BOXES = (1280, 640, 320)
#: libvips webpsave options equal to the worker's Pillow ``save(..., "WEBP", quality=80)``: the
#: same libwebp quality, method (effort) 4 as Pillow's default, lossy with full-quality alpha, no
#: smart or sharp-YUV chroma (Pillow enables neither), and no metadata (Pillow writes none).
WEBP = {"Q": 80, "effort": 4, "lossless": False, "alpha_q": 100, "smart_subsample": False, "keep": "none"}


def renditions(image: pyvips.Image, stem: str, out: Path) -> None:
    """Write the three boxes of an image in memory, already at (or inside) the largest box."""
    for box in BOXES:
        resized = image if box == BOXES[0] else image.thumbnail_image(box, height=box, size="down")
        resized.webpsave(str(out / f"{stem}_{box}.webp"), **WEBP)


def raster(path: Path, out: Path) -> None:
    """One shrink-on-load decode to the largest box, then every rendition from it."""
    image = pyvips.Image.thumbnail(str(path), BOXES[0], height=BOXES[0], size="down")
    renditions(image.copy_memory(), path.stem, out)


def pdftoppm(path: Path, out: Path) -> None:
    """Page 1 through ``pdftoppm`` at the largest box, then the renditions through libvips."""
    ppm = subprocess.run(
        ["pdftoppm", "-f", "1", "-l", "1", "-singlefile", "-scale-to", str(BOXES[0]), str(path)],
        check=True,
        capture_output=True,
    ).stdout
    renditions(from_ppm(ppm), path.stem, out)


def from_ppm(data: bytes) -> pyvips.Image:
    """A binary (P6, 8-bit) PPM as a libvips image (pyvips-binary has no PPM loader)."""
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:
        while data[pos : pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end : end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    magic, width, height, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic != b"P6" or maxval != 255:
        raise ValueError(f"expected an 8-bit P6 PPM, got {magic!r} with maxval {maxval}")
    pixels = data[pos + 1 : pos + 1 + width * height * 3]
    # Already in memory; this object keeps ``pixels`` alive. (``copy_memory`` would return a second
    # object on the same pixels that does not, and they would be freed under it.)
    return pyvips.Image.new_from_memory(pixels, width, height, 3, "uchar")


def main(argv: list[str]) -> int:
    """Render every path read from stdin with the named reference."""
    if len(argv) != 2 or argv[0] not in ("raster", "pdftoppm"):
        print("usage: python -m bench.vips_service raster|pdftoppm OUT_DIR", file=sys.stderr)
        return 2
    render = raster if argv[0] == "raster" else pdftoppm
    out = Path(argv[1])
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip():
            render(Path(line.strip()), out)
    print(json.dumps({"rss_peak_kb": vm_hwm_kb()}), flush=True)
    return 0


def vm_hwm_kb() -> int:
    """This process's peak RSS since its ``exec`` (``getrusage`` would count the parent's too)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
