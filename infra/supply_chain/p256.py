"""ECDSA P-256 with SHA-256 verification (FIPS 186-4), and the PEM and DER it comes in.

Only what checking a cosign key signature needs: an ``ecPublicKey``/``prime256v1``
SubjectPublicKeyInfo (the ``cosign.pub`` PEM), a DER ``ECDSA-Sig-Value`` and the
verification equation. Verifying touches public data only, so plain Python integers are
fine here (no secret reaches this module); the tests cross-check it with openssl and cosign.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

# The curve (SEC 2 secp256r1 / NIST P-256): y^2 = x^3 - 3x + b over GF(p), base point G of order n.
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
# DER of the two OIDs a P-256 SubjectPublicKeyInfo names: id-ecPublicKey and prime256v1.
_EC_ALGORITHM = bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107")
_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END PUBLIC KEY-----\s*")

Point = tuple[int, int] | None  # None: the point at infinity


class KeyFormatError(ValueError):
    """A public key or signature that is not what this module reads; the message says why."""


@dataclass(frozen=True)
class PublicKey:
    """A validated P-256 public key (a point on the curve, not the point at infinity)."""

    x: int
    y: int


def _on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x - 3 * x + B)) % P == 0


def _add(p1: Point, p2: Point) -> Point:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    # The tangent's slope when doubling (a = -3), the chord's otherwise.
    num, den = (3 * x1 * x1 - 3, 2 * y1) if p1 == p2 else (y2 - y1, x2 - x1)
    slope = num * pow(den, -1, P) % P
    x3 = (slope * slope - x1 - x2) % P
    return x3, (slope * (x1 - x3) - y1) % P


def _multiply(k: int, point: Point) -> Point:
    result: Point = None
    addend = point
    while k:
        if k & 1:
            result = _add(result, addend)
        addend = _add(addend, addend)
        k >>= 1
    return result


def _der_length(data: bytes, at: int) -> tuple[int, int]:
    """The DER length at ``at`` and where the content starts (definite, minimal forms only)."""
    if at >= len(data):
        raise KeyFormatError("truncated DER")
    first = data[at]
    if first < 0x80:
        return first, at + 1
    count = first & 0x7F
    if count == 0 or count > 2 or at + 1 + count > len(data):
        raise KeyFormatError("unsupported DER length")
    length = int.from_bytes(data[at + 1 : at + 1 + count], "big")
    if length < 0x80 or (count == 2 and length < 0x100):
        raise KeyFormatError("non-minimal DER length")
    return length, at + 1 + count


def _der_item(data: bytes, at: int, tag: int) -> tuple[bytes, int]:
    """The content of the DER item with ``tag`` at ``at``, and where the next item starts."""
    if at >= len(data) or data[at] != tag:
        raise KeyFormatError(f"expected DER tag 0x{tag:02x}")
    length, start = _der_length(data, at + 1)
    end = start + length
    if end > len(data):
        raise KeyFormatError("truncated DER")
    return data[start:end], end


def _der_integer(data: bytes, at: int) -> tuple[int, int]:
    content, end = _der_item(data, at, 0x02)
    if not content or content[0] & 0x80 or (len(content) > 1 and content[0] == 0 and not content[1] & 0x80):
        raise KeyFormatError("not a minimal positive DER INTEGER")
    return int.from_bytes(content, "big"), end


def load_public_key(pem: str) -> PublicKey:
    """The P-256 key of a ``-----BEGIN PUBLIC KEY-----`` PEM (what ``cosign generate-key-pair`` writes)."""
    if len(pem) > 4096:
        raise KeyFormatError("longer than any P-256 public key PEM")
    found = _PEM.fullmatch(pem.strip() + "\n")
    if found is None:
        raise KeyFormatError("not a PEM public key (-----BEGIN PUBLIC KEY----- … -----END PUBLIC KEY-----)")
    try:
        der = base64.b64decode("".join(found.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError("the PEM's base64 is malformed") from None
    spki, end = _der_item(der, 0, 0x30)
    if end != len(der):
        raise KeyFormatError("trailing bytes after the key")
    if not spki.startswith(_EC_ALGORITHM):
        raise KeyFormatError("not an ECDSA P-256 key (cosign's default); other key types are not supported")
    bits, end = _der_item(spki, len(_EC_ALGORITHM), 0x03)
    if end != len(spki) or len(bits) != 66 or bits[:2] != b"\x00\x04":
        raise KeyFormatError("not an uncompressed P-256 point")
    x, y = int.from_bytes(bits[2:34], "big"), int.from_bytes(bits[34:], "big")
    if not _on_curve(x, y):
        raise KeyFormatError("the point is not on the P-256 curve")
    return PublicKey(x, y)


def parse_signature(der: bytes) -> tuple[int, int]:
    """``(r, s)`` of a DER ``ECDSA-Sig-Value`` (``SEQUENCE { r INTEGER, s INTEGER }``), strictly."""
    body, end = _der_item(der, 0, 0x30)
    if end != len(der):
        raise KeyFormatError("trailing bytes after the signature")
    r, at = _der_integer(body, 0)
    s, at = _der_integer(body, at)
    if at != len(body):
        raise KeyFormatError("trailing bytes inside the signature")
    return r, s


def verify(key: PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` (DER) is ``key``'s ECDSA-SHA256 signature of ``message``."""
    try:
        r, s = parse_signature(signature)
    except KeyFormatError:
        return False
    if not (0 < r < N and 0 < s < N):
        return False
    z = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, -1, N)
    point = _add(_multiply(z * w % N, G), _multiply(r * w % N, (key.x, key.y)))
    return point is not None and point[0] % N == r
