"""The cosign signature reader on a real loopback registry, and on a hostile one.

Accepted: a signature by the configured key of a payload naming this digest. Refused, with
the reason: no signature, another key's, a valid signature of another digest copied over,
malformed or hostile signature manifests, oversized answers, redirects off loopback to plain
HTTP, a token service that is not HTTPS.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.errors import SignatureError
from infra.supply_chain import cosign_signatures, registry_reads
from infra.supply_chain.cosign_signatures import locate, signature_tag, verify_key
from infra.supply_chain.registry_reads import Registry
from infra.tools.image.registry_server import Registry as Served
from tests.infra.supply_chain.signing_kit import (
    Key,
    payload,
    push_image,
    sign_image,
    signature_layer,
    write_signatures,
)

REPO = "mobius/signed"


@pytest.fixture
def image(registry: Served, request: pytest.FixtureRequest) -> tuple[str, str]:
    """A fresh image (its own content): (reference, digest)."""
    digest = push_image(registry.host, REPO, "t", request.node.name.encode())
    return f"{registry.host}/{REPO}@{digest}", digest


def test_a_signature_by_the_configured_key_is_accepted(
    registry: Served, image: tuple[str, str], key: Key
) -> None:
    ref, digest = image
    sign_image(registry.host, REPO, digest, key)
    assert verify_key(ref, key.public_pem).reference == ref


def test_an_unsigned_digest_is_refused(registry: Served, image: tuple[str, str], key: Key) -> None:
    ref, digest = image
    with pytest.raises(SignatureError, match=f"{ref} is not signed: .* has no {signature_tag(digest)}"):
        verify_key(ref, key.public_pem)


def test_another_keys_signature_is_refused(
    registry: Served, image: tuple[str, str], key: Key, other_key: Key
) -> None:
    ref, digest = image
    sign_image(registry.host, REPO, digest, other_key)
    with pytest.raises(SignatureError, match="signature 1: not signed by the configured key"):
        verify_key(ref, key.public_pem)


def test_a_valid_signature_of_another_digest_is_refused(
    registry: Served, image: tuple[str, str], key: Key
) -> None:
    ref, digest = image
    other = push_image(registry.host, REPO, "other", b"another image")
    sign_image(registry.host, REPO, digest, key, claims=other)  # our key, but it vouches for `other`
    with pytest.raises(SignatureError, match=f"it signs '{other}', not {digest}"):
        verify_key(ref, key.public_pem)


def test_one_good_signature_among_bad_ones_is_enough(
    registry: Served, image: tuple[str, str], key: Key, other_key: Key
) -> None:
    ref, digest = image
    host = registry.host
    data = payload(host, REPO, digest)
    theirs = base64.b64encode(other_key.sign(data)).decode()
    ours = base64.b64encode(key.sign(data)).decode()
    layers = [signature_layer(host, REPO, data, theirs), signature_layer(host, REPO, data, ours)]
    write_signatures(host, REPO, digest, layers)
    verify_key(ref, key.public_pem)
    write_signatures(host, REPO, digest, layers[:1] * 2)
    with pytest.raises(SignatureError, match=r"signature 1: .*; signature 2: not signed"):
        verify_key(ref, key.public_pem)


def _layer_with(registry: Served, digest: str, key: Key, **changes: Any) -> dict[str, Any]:
    data = changes.pop("data", payload(registry.host, REPO, digest))
    layer = signature_layer(registry.host, REPO, data, base64.b64encode(key.sign(data)).decode())
    return {**layer, **changes}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"annotations": {cosign_signatures.SIGNATURE_ANNOTATION: "not*base64"}}, "no base64 signature"),
        ({"annotations": {cosign_signatures.SIGNATURE_ANNOTATION: "A" * 5000}}, "no base64 signature"),
        ({"annotations": None}, "no base64 signature"),
        ({"mediaType": "application/vnd.oci.image.layer.v1.tar"}, "not a cosign simple-signing layer"),
        ({"size": 10**9}, "size is missing or over 64 KiB"),
        ({"data": b"[1, 2]"}, "has no critical.image"),
        ({"data": b"\xff\xfe not json"}, "payload is not JSON"),
        ({"data": json.dumps({"critical": {"image": {}, "type": "x"}}).encode()}, "critical.type is not"),
    ],
)
def test_malformed_signature_layers_are_refused_with_the_reason(
    registry: Served, image: tuple[str, str], key: Key, change: dict[str, Any], reason: str
) -> None:
    ref, digest = image
    write_signatures(registry.host, REPO, digest, [_layer_with(registry, digest, key, **change)])
    with pytest.raises(SignatureError, match=reason):
        verify_key(ref, key.public_pem)


def test_too_many_signature_layers_are_refused(registry: Served, image: tuple[str, str], key: Key) -> None:
    ref, digest = image
    layer = _layer_with(registry, digest, key)
    write_signatures(registry.host, REPO, digest, [layer] * (cosign_signatures.MAX_SIGNATURES + 1))
    with pytest.raises(SignatureError, match="65 layers, more than 64"):
        verify_key(ref, key.public_pem)


def test_a_bad_configured_key_and_a_bad_reference_say_so(image: tuple[str, str]) -> None:
    ref, _ = image
    with pytest.raises(SignatureError, match="the configured public key: not a PEM public key"):
        verify_key(ref, "ssh-ed25519 AAAA")
    with pytest.raises(SignatureError, match="must be pinned by digest"):
        verify_key(ref.split("@")[0] + ":latest", "x")


@pytest.mark.parametrize(
    ("reference", "where"),
    [
        ("ghcr.io/m/w@sha256:" + "a" * 64, ("ghcr.io", "m/w")),
        ("127.0.0.1:5000/m/w@sha256:" + "a" * 64, ("127.0.0.1:5000", "m/w")),
        ("localhost/w@sha256:" + "a" * 64, ("localhost", "w")),
        ("mobius/w@sha256:" + "a" * 64, ("registry-1.docker.io", "mobius/w")),
        ("busybox@sha256:" + "a" * 64, ("registry-1.docker.io", "library/busybox")),
    ],
)
def test_locate_names_registry_and_repository(reference: str, where: tuple[str, str]) -> None:
    assert locate(reference)[:2] == where


def test_plain_http_only_on_loopback() -> None:
    assert Registry("127.0.0.1:5000").base == "http://127.0.0.1:5000"
    assert Registry("[::1]:5000").base == "http://[::1]:5000"
    assert Registry("ghcr.io").base == "https://ghcr.io"
    assert Registry("10.0.0.1:5000").base == "https://10.0.0.1:5000"


# --- A hostile registry: a loopback HTTP server answering whatever the test says. ---

Answer = Callable[[http.server.BaseHTTPRequestHandler], None]
Hostile = Callable[[Answer], str]


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    """Serve ``answer`` for every request on a loopback port; returns ``127.0.0.1:<port>``."""
    servers: list[http.server.HTTPServer] = []

    def start(answer: Answer) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _reply(status: int, body: bytes = b"", **headers: str) -> Answer:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(body)

    return answer


DIGEST = "sha256:" + "c" * 64


def test_a_huge_manifest_is_refused_without_reading_it_all(hostile: Hostile, key: Key) -> None:
    host = hostile(_reply(200, b"{" + b" " * (registry_reads.MAX_MANIFEST_BYTES + 10)))
    with pytest.raises(SignatureError, match="answered more than 4194304 bytes; refused"):
        verify_key(f"{host}/m/w@{DIGEST}", key.public_pem)


def test_a_blob_that_is_not_its_digest_is_refused(hostile: Hostile) -> None:
    host = hostile(_reply(200, b"something else"))
    with pytest.raises(SignatureError, match=r"served blob sha256:c+ with other content"):
        Registry(host).blob("m/w", DIGEST)


def test_a_redirect_to_plain_http_off_loopback_is_refused(hostile: Hostile, key: Key) -> None:
    host = hostile(_reply(307, Location="http://registry.example/v2/m/w/manifests/x"))
    with pytest.raises(SignatureError, match=r"redirected to 'http://registry.example/.*only HTTPS"):
        verify_key(f"{host}/m/w@{DIGEST}", key.public_pem)


def test_a_token_service_over_plain_http_is_refused(hostile: Hostile, key: Key) -> None:
    challenge = 'Bearer realm="http://auth.example/token",service="r"'
    host = hostile(_reply(401, WWW_Authenticate=challenge))
    with pytest.raises(SignatureError, match=r"token service 'http://auth.example/token' is not HTTPS"):
        verify_key(f"{host}/m/w@{DIGEST}", key.public_pem)


def test_an_error_status_is_named(hostile: Hostile, key: Key) -> None:
    host = hostile(_reply(500))
    with pytest.raises(SignatureError, match="answered HTTP 500"):
        verify_key(f"{host}/m/w@{DIGEST}", key.public_pem)
