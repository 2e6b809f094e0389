"""What PDFium's API does not say about a page's image, read from the PDF's own bytes.

PDFium gives an image's filters, colour space and pixel size, but not the rest of its stream
dictionary (a soft mask, a colour-key mask, a ``Decode`` array), nor the graphics-state
parameters in force where it is drawn (a transfer function). :mod:`worker.render.pdf_scan`
decodes the image itself only when these checks can read that there is none of them, and reads
nothing it is not sure PDFium reads the same way: the image's raw bytes must occur once in the
file (so the stream PDFium read is that one), be preceded by ``N G obj << ... >> stream`` with a
dictionary of names, numbers, references and flat arrays only (no string, comment, nested
dictionary or escaped name that two parsers could read differently), and hold only the keys of a
plain image. Everything else answers ``False``: the page is then rendered by PDFium.
"""

from __future__ import annotations

import re

#: PDF whitespace (ISO 32000-1, 7.2.2).
_WS = b"\x00\t\n\x0c\r "
_W = rb"[\x00\t\n\x0c\r ]"
#: The object header right before the image's dictionary: ``N G obj <<``, at the end of the text.
_OBJ_HEAD = re.compile(rb"(?:^|" + _W + rb")\d+" + _W + rb"+\d+" + _W + rb"+obj" + _W + rb"*<<\Z")
#: A dictionary body that any parser tokenises alike: no strings, comments, hex strings, nested
#: dictionaries, procedures or escaped names.
_UNSURE = re.compile(rb"[()<>{}%#]")
_TOKEN = re.compile(rb"/[^\x00\t\n\x0c\r /\[\]]*|\[|\]|[^\x00\t\n\x0c\r /\[\]]+")
_INT = re.compile(rb"\d+\Z")
#: Outside the image's bytes: graphics-state dictionaries (a transfer function, halftones),
#: default colour spaces that replace DeviceRGB and DeviceGray, object streams (compressed
#: objects a byte search cannot see into) and escaped names (``/ExtG#53tate``).
_ELSEWHERE = re.compile(rb"/ExtGState|/Default(?:RGB|Gray|CMYK)|/ObjStm|/[^\x00\t\n\x0c\r ()<>\[\]{}/%]*#")
#: How much of the file before the data is searched for its dictionary, and the smallest image
#: worth it (a short stream's bytes may well occur elsewhere too).
MAX_DICT_BYTES = 4096
MIN_STREAM_BYTES = 1024


def locate(data: bytes, raw: bytes) -> int | None:
    """Where ``raw`` starts in ``data`` if it occurs exactly once, else ``None``."""
    if len(raw) < MIN_STREAM_BYTES:
        return None
    start = data.find(raw)
    if start < 0 or data.find(raw, start + 1) >= 0:
        return None
    return start


def image_dict_is_plain(data: bytes, raw: bytes, color_space: bytes, pixels: tuple[int, int]) -> bool:
    """Whether the image stream whose raw bytes are ``raw`` has a dictionary with nothing but
    the type, size, 8 bits per component, the direct ``color_space``, one ``DCTDecode`` filter,
    its length, a name and a metadata reference."""
    start = locate(data, raw)
    if start is None:
        return False
    head = data[max(0, start - MAX_DICT_BYTES) : start]
    for eol in (b"stream\r\n", b"stream\n"):
        if head.endswith(eol):
            before = head[: -len(eol)].rstrip(_WS)
            break
    else:
        return False
    if not before.endswith(b">>"):
        return False
    opening = before.rfind(b"<<", 0, len(before) - 2)
    if opening < 0:
        return False
    body = before[opening + 2 : -2]
    prefix = before[: opening + 2]
    line = prefix[max(prefix.rfind(b"\n"), prefix.rfind(b"\r")) + 1 :]
    if _UNSURE.search(body) or b"%" in line or b"(" in line or not _OBJ_HEAD.search(prefix[-64:]):
        return False
    entries = _entries(_TOKEN.findall(body))
    return entries is not None and _plain(entries, color_space, pixels)


def only_plain_objects(data: bytes, raw: bytes) -> bool:
    """Whether nothing outside the image's bytes names a graphics state, a default colour space or
    an object stream, or escapes a name."""
    start = locate(data, raw)
    if start is None:
        return False
    return not (_ELSEWHERE.search(data, 0, start) or _ELSEWHERE.search(data, start + len(raw)))


def _entries(tokens: list[bytes]) -> dict[bytes, list[bytes]] | None:
    """The dictionary's keys and their values' tokens; ``None`` if it is not a flat dictionary of
    names, numbers, references and arrays of those, each key once."""
    entries: dict[bytes, list[bytes]] = {}
    i = 0
    while i < len(tokens):
        key = tokens[i]
        if not key.startswith(b"/") or key in entries or i + 1 >= len(tokens):
            return None
        if tokens[i + 1] == b"[":
            try:
                end = tokens.index(b"]", i + 2)
            except ValueError:
                return None
            value = tokens[i + 1 : end + 1]
            if b"[" in value[1:-1]:
                return None
        elif i + 3 < len(tokens) and tokens[i + 3] == b"R":
            value = tokens[i + 1 : i + 4]
        else:
            value = tokens[i + 1 : i + 2]
        if value[0] in (b"]", b"R"):
            return None
        entries[key] = value
        i += 1 + len(value)
    return entries


def _is_ref(value: list[bytes]) -> bool:
    return len(value) == 3 and bool(_INT.match(value[0]) and _INT.match(value[1])) and value[2] == b"R"


def _plain(entries: dict[bytes, list[bytes]], color_space: bytes, pixels: tuple[int, int]) -> bool:
    checks = {
        b"/Type": lambda v: v == [b"/XObject"],
        b"/Subtype": lambda v: v == [b"/Image"],
        b"/Width": lambda v: v == [str(pixels[0]).encode()],
        b"/Height": lambda v: v == [str(pixels[1]).encode()],
        b"/BitsPerComponent": lambda v: v == [b"8"],
        b"/ColorSpace": lambda v: v == [b"/" + color_space],
        b"/Filter": lambda v: v in ([b"/DCTDecode"], [b"[", b"/DCTDecode", b"]"]),
        b"/Length": lambda v: (len(v) == 1 and bool(_INT.match(v[0]))) or _is_ref(v),
        b"/Name": lambda v: len(v) == 1 and v[0].startswith(b"/"),
        b"/Metadata": _is_ref,
    }
    required = (b"/Subtype", b"/Width", b"/Height", b"/BitsPerComponent", b"/ColorSpace", b"/Filter")
    if any(key not in entries for key in required):
        return False
    return all(key in checks and checks[key](value) for key, value in entries.items())
