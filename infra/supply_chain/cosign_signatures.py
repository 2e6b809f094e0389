"""Is this image digest signed by the configured signer? cosign's signature format, read in Python.

A cosign key signature of ``repo@sha256:<hex>`` is an OCI manifest tagged ``sha256-<hex>.sig``
in the same repository. Each of its layers is one signature: a "simple signing" JSON payload
(the blob) whose ``critical.image.docker-manifest-digest`` names the signed digest, and the
ECDSA signature of the payload's bytes, base64, in the layer's
``dev.cosignproject.cosign/signature`` annotation. An image is accepted when one layer's
signature verifies with the configured public key AND its payload names this very digest
(a valid signature of another image, copied over, is refused). No cosign binary is needed, so
the policy pack and the release tool run anywhere the program does; the tests check that
``cosign verify`` agrees on real images.

Keyless signatures (a Fulcio certificate for a CI identity, logged in Rekor) need Sigstore's
trust root and transparency log: those are checked by the ``cosign`` binary on ``PATH``
(:func:`verify_keyless`), as on GitHub, where the workflow installs it.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra import runner
from infra.config.fields.image_refs import split_image, validate_image_ref
from infra.errors import SignatureError
from infra.supply_chain import p256
from infra.supply_chain.registry_reads import Registry, is_loopback

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_TYPE = "cosign container image signature"
#: More signature layers than any real signer writes: a registry serving more is refused.
MAX_SIGNATURES = 64
DOCKER_HUB = "registry-1.docker.io"


@dataclass(frozen=True)
class Verified:
    """An accepted image: its reference and what vouched for it."""

    reference: str
    signer: str


def signature_tag(digest: str) -> str:
    """cosign's tag for the signatures of ``digest``: ``sha256-<hex>.sig``."""
    return digest.replace(":", "-") + ".sig"


def locate(reference: str) -> tuple[str, str, str]:
    """``(registry host, repository, digest)`` of a digest-pinned reference (Docker Hub when unnamed)."""
    try:
        validate_image_ref(reference)
    except ValueError as exc:
        raise SignatureError(str(exc)) from None
    name, digest = split_image(reference)
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest, digest
    return DOCKER_HUB, name if sep else f"library/{name}", digest


def payload_problem(payload: bytes, digest: str) -> str | None:
    """Why a simple-signing payload does not vouch for ``digest``; None when it does."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return "its payload is not JSON"
    critical = doc.get("critical") if isinstance(doc, dict) else None
    image = critical.get("image") if isinstance(critical, dict) else None
    if not isinstance(image, dict) or not isinstance(critical, dict):
        return "its payload has no critical.image"
    if critical.get("type") != SIGNATURE_TYPE:
        return f"its payload's critical.type is not {SIGNATURE_TYPE!r}"
    signed = image.get("docker-manifest-digest")
    if signed != digest:
        return f"it signs {str(signed)[:80]!r}, not {digest}"
    return None


def _layers(manifest: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(manifest)
    except (ValueError, UnicodeDecodeError):
        raise SignatureError("the signature manifest is not JSON") from None
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise SignatureError("the signature manifest has no list of layers")
    if len(layers) > MAX_SIGNATURES:
        raise SignatureError(f"the signature manifest has {len(layers)} layers, more than {MAX_SIGNATURES}")
    return layers


def _signature_bytes(layer: dict[str, Any]) -> bytes | None:
    annotations = layer.get("annotations")
    encoded = annotations.get(SIGNATURE_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(encoded, str) or len(encoded) > 1024:
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def check_signatures(manifest: bytes, digest: str, blob: Callable[[str], bytes], key: p256.PublicKey) -> None:
    """Accept when one layer of the signature ``manifest`` is ``key``'s signature of a payload naming
    ``digest``; else raise :class:`SignatureError` with each layer's reason."""
    reasons: list[str] = []
    for index, layer in enumerate(_layers(manifest)):
        where = f"signature {index + 1}"
        if layer.get("mediaType") != SIMPLE_SIGNING:
            reasons.append(f"{where}: not a cosign simple-signing layer")
            continue
        signature = _signature_bytes(layer)
        if signature is None:
            reasons.append(f"{where}: no base64 signature in {SIGNATURE_ANNOTATION}")
            continue
        size = layer.get("size")
        if not isinstance(size, int) or size > 65536:
            reasons.append(f"{where}: its payload size is missing or over 64 KiB")
            continue
        payload = blob(str(layer.get("digest")))
        if not p256.verify(key, signature, payload):
            reasons.append(f"{where}: not signed by the configured key")
            continue
        problem = payload_problem(payload, digest)
        if problem is None:
            return
        reasons.append(f"{where}: {problem}")
    raise SignatureError("; ".join(reasons) or "the signature manifest holds no signature")


def verify_key(reference: str, public_key_pem: str, registry: Registry | None = None) -> Verified:
    """Check ``reference``'s cosign signature against the public key; raise :class:`SignatureError`."""
    host, repository, digest = locate(reference)
    try:
        key = p256.load_public_key(public_key_pem)
    except p256.KeyFormatError as exc:
        raise SignatureError(f"the configured public key: {exc}") from None
    reg = registry or Registry(host)
    manifest = reg.manifest(repository, signature_tag(digest))
    if manifest is None:
        raise SignatureError(f"{reference} is not signed: {host}/{repository} has no {signature_tag(digest)}")
    try:
        check_signatures(manifest, digest, lambda d: reg.blob(repository, d), key)
    except SignatureError as exc:
        raise SignatureError(f"{reference} has no valid signature by the configured key: {exc}") from None
    return Verified(reference, "the configured public key")


def verify_keyless(reference: str, identity: str, issuer: str) -> Verified:
    """Check a keyless (Fulcio certificate, Rekor-logged) signature with ``cosign verify`` from PATH."""
    host, _, _ = locate(reference)
    cosign = shutil.which("cosign")
    if cosign is None:
        raise SignatureError(
            "keyless verification needs cosign on PATH (sigstore/cosign-installer on GitHub; "
            "`python -m infra local bootstrap --only cosign` here)"
        )
    argv = [cosign, "verify", "--certificate-identity", identity, "--certificate-oidc-issuer", issuer,
            "--output", "json", reference]  # fmt: skip
    if is_loopback(host):
        argv.insert(2, "--allow-http-registry")
    done = runner.call(argv, error=SignatureError, timeout=120)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SignatureError(
            f"{reference} has no valid keyless signature by {identity} ({issuer}): {' '.join(tail)[:400]}"
        )
    return Verified(reference, f"{identity} ({issuer})")


def verify(
    reference: str, *, public_key: str | None = None, identity: str | None = None, issuer: str | None = None
) -> Verified:
    """Check ``reference`` against one signer: a public key, or a keyless identity and issuer."""
    if public_key is not None:
        return verify_key(reference, public_key)
    if identity is not None and issuer is not None:
        return verify_keyless(reference, identity, issuer)
    raise SignatureError("no signer configured: a public key, or a keyless identity and issuer")
