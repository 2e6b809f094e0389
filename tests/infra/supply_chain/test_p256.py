"""The pure-Python ECDSA P-256 verifier against openssl's signatures and keys, and hostile input."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from infra.supply_chain import p256
from tests.infra.supply_chain.signing_kit import Key


def test_openssl_signatures_verify_and_nothing_else_does(key: Key, other_key: Key) -> None:
    mine = p256.load_public_key(key.public_pem)
    theirs = p256.load_public_key(other_key.public_pem)
    for message in (b"", b"hello\n", bytes(range(256)) * 40):
        signature = key.sign(message)
        assert p256.verify(mine, signature, message)
        assert not p256.verify(theirs, signature, message)
        assert not p256.verify(mine, signature, message + b"x")
        assert not p256.verify(mine, other_key.sign(message), message)


def _der(r: int, s: int) -> bytes:
    def integer(v: int) -> bytes:
        body = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")
        return b"\x02" + bytes([len(body)]) + body

    body = integer(r) + integer(s)
    return b"\x30" + bytes([len(body)]) + body


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        b"\x30",
        b"\x30\x00",
        b"\x30\x81\x05\x02\x01\x01\x02\x01\x01",  # non-minimal length
        b"\x30\x06\x02\x01\x01\x02\x01\x01\x00",  # trailing byte after the sequence
        b"\x30\x06\x02\x01\x81\x02\x01\x01",  # negative r
        b"\x30\x07\x02\x02\x00\x01\x02\x01\x01",  # non-minimal integer
        _der(0, 1),
        _der(1, 0),
        _der(p256.N, 1),
        _der(1, p256.N + 5),
        b"\xff" * 10_000,
    ],
)
def test_malformed_or_out_of_range_signatures_are_refused(key: Key, signature: bytes) -> None:
    assert not p256.verify(p256.load_public_key(key.public_pem), signature, b"hello\n")


def _pem(der: bytes) -> str:
    return "-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(der).decode() + "-----END PUBLIC KEY-----\n"


def test_a_point_off_the_curve_is_refused(key: Key) -> None:
    body = key.public_pem.split("-----")[2]
    der = bytearray(base64.b64decode("".join(body.split())))
    der[-1] ^= 1  # y changed: not on the curve any more
    with pytest.raises(p256.KeyFormatError, match="not on the P-256 curve"):
        p256.load_public_key(_pem(bytes(der)))


@pytest.mark.parametrize(
    ("algorithm", "message"),
    [
        (["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"], "not an ECDSA P-256 key"),
        (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"], "not an ECDSA P-256 key"),
        (["genpkey", "-algorithm", "ED25519"], "not an ECDSA P-256 key"),
    ],
)
def test_other_key_types_are_refused_by_name(algorithm: list[str], message: str, tmp_path: Path) -> None:
    private = subprocess.run(["openssl", *algorithm], capture_output=True, check=True).stdout
    public = subprocess.run(["openssl", "pkey", "-pubout"], input=private, capture_output=True, check=True)
    with pytest.raises(p256.KeyFormatError, match=message):
        p256.load_public_key(public.stdout.decode())


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        ("", "not a PEM public key"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a PEM public key"),
        ("-----BEGIN PUBLIC KEY-----\nA=A=\n-----END PUBLIC KEY-----\n", "base64 is malformed"),
        ("-----BEGIN PUBLIC KEY-----\n" + "A" * 5000 + "\n-----END PUBLIC KEY-----\n", "longer than"),
        (_pem(b"\x30\x03\x02\x01\x01"), "not an ECDSA P-256 key"),
        (_pem(b"\x30\x05\x02\x01\x01"), "truncated DER"),
    ],
)
def test_malformed_keys_say_why(pem: str, message: str) -> None:
    with pytest.raises(p256.KeyFormatError, match=message):
        p256.load_public_key(pem)
