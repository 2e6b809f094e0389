"""A minimal PDF writer for the benchmark corpus: text pages and vector drawings, by hand.

Pillow writes only image PDFs (the scanned kind); text and vector pages are content streams
written here, so nothing is downloaded. Text uses the base-14 fonts Helvetica and
Helvetica-Bold, not embedded, as many office exports do: each renderer substitutes its own
(PDFium its built-in fonts, poppler fontconfig's).
"""

from __future__ import annotations

import random
import zlib

A4 = (595, 842)
A3_LANDSCAPE = (1191, 842)
_TEXT = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no will "
    "render preview scale decode encode pixel memory budget throughput cluster release policy"
)
#: The vocabulary of the generated text (PDF pages, screenshots, scans).
WORDS = tuple(_TEXT.split())


def pdf_bytes(kind: str, pages: int, seed: int) -> bytes:
    """A complete PDF of ``pages`` pages of ``kind`` (``text`` or ``vector``)."""
    rng = random.Random(seed)
    size = A4 if kind == "text" else A3_LANDSCAPE
    streams = [_text_page(rng, size) if kind == "text" else _vector_page(rng, size) for _ in range(pages)]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, filled in below once the page ids are known
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    ]
    page_ids = []
    for stream in streams:
        body = zlib.compress(stream)
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(body) + body + b"\nendstream")
        content_id = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> >>" % (*size, content_id)
        )
        page_ids.append(len(objects))
    kids = b" ".join(b"%d 0 R" % i for i in page_ids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _text_page(rng: random.Random, size: tuple[int, int]) -> bytes:
    """Two columns of 9 pt text under a 16 pt bold heading, as in a paper or a report."""
    w, h = size
    ops = [b"BT /F2 16 Tf 56 %d Td (%s) Tj ET" % (h - 60, _sentence(rng, 6).title().encode())]
    col_w, lead = (w - 56 * 2 - 20) // 2, 11
    for col in range(2):
        ops.append(b"BT /F1 9 Tf %d TL %d %d Td" % (lead, 56 + col * (col_w + 20), h - 90))
        for _ in range((h - 140) // lead):
            ops.append(b"(%s) '" % _sentence(rng, col_w // 26).encode())
        ops.append(b"ET")
    return b"\n".join(ops)


def _vector_page(rng: random.Random, size: tuple[int, int]) -> bytes:
    """A plan-like drawing: a grid, 2,000 strokes and curves, filled shapes, dimension labels."""
    w, h = size
    ops = [b"0.2 w 0.8 0.8 0.85 RG"]
    for x in range(20, w - 20, 12):
        ops.append(b"%d 20 m %d %d l" % (x, x, h - 20))
    for y in range(20, h - 20, 12):
        ops.append(b"20 %d m %d %d l" % (y, w - 20, y))
    ops.append(b"S")
    for _ in range(300):
        ops.append(
            b"%.3f %.3f %.3f rg %d %d %d %d re f"
            % (rng.random(), rng.random(), rng.random(),
               rng.randrange(w), rng.randrange(h), rng.randrange(5, 80), rng.randrange(5, 80))
        )  # fmt: skip
    for _ in range(2000):
        x, y = rng.randrange(w), rng.randrange(h)
        pts = [(x + rng.randrange(-90, 90), y + rng.randrange(-90, 90)) for _ in range(3)]
        ops.append(
            b"%.2f w %.2f %.2f %.2f RG %d %d m %d %d %d %d %d %d c S"
            % (rng.uniform(0.3, 2.5), rng.random() * 0.5, rng.random() * 0.5, rng.random() * 0.5,
               x, y, *pts[0], *pts[1], *pts[2])
        )  # fmt: skip
    ops.append(b"0 0 0 rg")
    for _ in range(120):
        ops.append(
            b"BT /F1 %d Tf %d %d Td (%d mm) Tj ET"
            % (rng.randrange(6, 12), rng.randrange(w - 60), rng.randrange(h - 20), rng.randrange(10, 9000))
        )
    return b"\n".join(ops)


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, words)))
