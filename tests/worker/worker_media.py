"""Real sample media generated with Pillow (and by hand for the encrypted PDF)."""

from __future__ import annotations

import io

from PIL import Image


def _image(width: int, height: int, mode: str = "RGB") -> Image.Image:
    image = Image.new(mode, (width, height), (30, 120, 200, 255)[: len(mode)])
    # A diagonal gradient block so resizes have real content to chew on.
    for x in range(0, width, max(1, width // 16)):
        image.paste((x % 256, 60, 255 - x % 256, 255)[: len(mode)], (x, 0, x + 3, height))
    return image


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    image = _image(width, height)
    if orientation is None:
        return encode(image, "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=90, exif=exif)


def progressive_jpeg(width: int, height: int) -> bytes:
    """A progressive 4:4:4 JPEG: libjpeg holds all its coefficients (6 bytes a pixel) to decode it."""
    return encode(_image(width, height), "JPEG", quality=90, progressive=True, subsampling=0)


def png(width: int, height: int, alpha: bool = False) -> bytes:
    image = _image(width, height, "RGBA" if alpha else "RGB")
    if alpha:
        image.paste((0, 0, 0, 0), (0, 0, width // 2, height))  # left half fully transparent
    return encode(image, "PNG")


def decode_png_rgba(data: bytes) -> Image.Image:
    """``data`` decoded and converted to RGBA (an opaque image gets an alpha channel of 255)."""
    return Image.open(io.BytesIO(data)).convert("RGBA")


def webp(width: int, height: int) -> bytes:
    return encode(_image(width, height), "WEBP", quality=80)


def gif(width: int, height: int, frames: int = 3) -> bytes:
    """Animated GIF whose first frame is wider-than-tall red and later frames are blue."""
    first = Image.new("RGB", (width, height), (255, 0, 0))
    rest = [Image.new("RGB", (width, height), (0, 0, 255)) for _ in range(frames - 1)]
    return encode(first, "GIF", save_all=True, append_images=rest, duration=100, loop=0)


def pdf(width_pt: int = 612, height_pt: int = 792, pages: int = 2) -> bytes:
    """A multi-page PDF written by Pillow (page size in points at 72 dpi)."""
    images = [_image(width_pt, height_pt) for _ in range(pages)]
    return encode(images[0], "PDF", resolution=72.0, save_all=True, append_images=images[1:])


def text_pdf(lines: int = 40, colour: bytes = b"") -> bytes:
    """One US-letter page of Helvetica text (not embedded), black on white; ``colour``: content
    drawn after it (e.g. a small red mark)."""
    text = b"".join(
        b"(Line %d of a text page, set in 11 pt Helvetica, anti-aliased by PDFium) Tj T* " % n
        for n in range(lines)
    )
    content = b"BT /F1 11 Tf 13 TL 56 740 Td " + text + b"ET\n" + colour
    return _assemble_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ])  # fmt: skip


def empty_pdf() -> bytes:
    """A well-formed PDF whose page tree has zero pages (as PDFium itself writes one)."""
    return _assemble_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])


def encrypted_pdf() -> bytes:
    """A one-page PDF with a Standard security handler (RC4, revision 3) whose user password is unknown.

    Written by hand: PDFium sees the /Encrypt dictionary, tries the empty password, fails the
    check against /U and refuses the document, exactly as for a real password-protected file.
    """
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        b"<< /Filter /Standard /V 2 /R 3 /Length 128 /P -3904 "
        b"/O <" + b"11" * 32 + b"> /U <" + b"22" * 32 + b"> >>",
    ]
    return _assemble_pdf(
        objects, trailer_extra=b" /Encrypt 4 0 R /ID [<" + b"ab" * 16 + b"> <" + b"ab" * 16 + b">]"
    )


def _assemble_pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R" % (len(objects) + 1) + trailer_extra + b" >>\n"
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def huge_png_header(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG that declares enormous dimensions (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def slow_pdf(strokes: int = 60_000) -> bytes:
    """A small PDF (a compressed content stream) whose one page takes PDFium seconds to render:
    ``strokes`` overlapping stroked curves, the cost of a hostile or just very detailed drawing."""
    import zlib

    ops = bytearray(b"0.5 w\n")
    for i in range(strokes):
        x, y = i * 37 % 600, i * 53 % 780
        ops += b"%d %d m %d %d %d %d %d %d c S\n" % (x, y, 600 - x, y, x, 780 - y, 600 - y % 600, x)
    stream = zlib.compress(bytes(ops), 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    return _assemble_pdf(objects)


def scan_pdf(
    image: bytes,
    pixels: tuple[int, int],
    *,
    page: tuple[float, float] = (300, 420),
    origin: tuple[float, float] = (0, 0),
    matrix: tuple[float, ...] | None = None,
    rotate: int = 0,
    color_space: bytes = b"/DeviceRGB",
    image_extra: bytes = b"",
    content_before: bytes = b"",
    content_after: bytes = b"",
    resources_extra: bytes = b"",
    page_extra: bytes = b"",
    extra_objects: tuple[bytes, ...] = (),
) -> bytes:
    """A one-page PDF that is one DCTDecode image (``image``, of ``pixels``), as a scanner writes it.

    By default the image covers the ``page`` (points, its lower left corner at ``origin``)
    exactly; ``matrix`` places it otherwise (the ``cm`` before ``Do``). Object 6 is a Helvetica
    font (``/F1``) for text in the content; ``extra_objects`` are numbered from 7.
    """
    w, h = page
    x0, y0 = origin
    a, b, c, d, e, f = matrix or (w, 0, 0, h, x0, y0)
    content = content_before + b"\nq %g %g %g %g %g %g cm /Im0 Do Q\n" % (a, b, c, d, e, f) + content_after
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [%g %g %g %g] /Rotate %d /Contents 4 0 R "
        b"/Resources << /XObject << /Im0 5 0 R >> /Font << /F1 6 0 R >> %s >> %s >>"
        % (x0, y0, x0 + w, y0 + h, rotate, resources_extra, page_extra),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /BitsPerComponent 8 /ColorSpace %s "
        b"/Filter /DCTDecode %s /Length %d >>\nstream\n"
        % (*pixels, color_space, image_extra, len(image))
        + image
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        *extra_objects,
    ]
    return _assemble_pdf(objects)


def lossless_jpeg(width: int, height: int) -> bytes:
    """A lossless (SOF3) 8-bit greyscale JPEG, all 128: predictor 1, so every difference is 0.

    Pillow cannot write one. One Huffman code (``0``, category 0) encodes each sample in one bit.
    """
    import struct

    def segment(marker: int, body: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body

    frame = struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0])
    table = bytes([0x00, 1] + [0] * 15 + [0])  # DC table 0: one code of length 1, for category 0
    scan = bytes([1, 1, 0x00, 1, 0, 0])  # one component on table 0; predictor 1, no point transform
    samples = bytes((width * height + 7) // 8)  # one 0 bit a sample
    return (
        b"\xff\xd8"
        + segment(0xC3, frame)
        + segment(0xC4, table)
        + segment(0xDA, scan)
        + samples
        + b"\xff\xd9"
    )
