"""The Python verifier and the real ``cosign verify`` agree on the same images in a real registry.

Signed with cosign's own key pair, or written by the test kit with an openssl key: both accept a
signature by the configured key of this digest; both refuse an unsigned digest, another key's
signature, and a valid signature of another digest put at this one's tag. ``cosign`` is the
pinned v2 (infra/tools/local/toolchain/versions.py), built on demand: about 7 minutes cold.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.errors import ImageError, SignatureError
from infra.supply_chain import cosign_signatures
from infra.supply_chain.cosign_signatures import verify_key
from infra.tools.image import signing
from infra.tools.image.registry_server import Registry
from infra.tools.local.toolchain.build import ensure_built
from tests.infra.supply_chain.signing_kit import (
    CosignKeys,
    Key,
    copy_signatures,
    cosign_keys,
    cosign_verify,
    push_image,
    sign_image,
)

pytestmark = pytest.mark.timeout(1200)  # the first test may build cosign
REPO = "mobius/cross-checked"


@pytest.fixture(scope="module")
def cosign() -> str:
    return ensure_built("cosign")


@pytest.fixture(scope="module")
def cosign_key(cosign: str, tmp_path_factory: pytest.TempPathFactory) -> CosignKeys:
    return cosign_keys(cosign, tmp_path_factory.mktemp("cosign-keys"))


def _cosign_sign(cosign_key: CosignKeys, reference: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(signing.ENV_PASSWORD, cosign_key.password)
    predicate = signing.provenance(Path(), reference, "unknown", None, None, 0)
    signing.sign(reference, str(cosign_key.private), predicate, lambda line: None)


def _python_accepts(reference: str, public_pem: str) -> bool:
    try:
        verify_key(reference, public_pem)
    except SignatureError:
        return False
    return True


@dataclass(frozen=True)
class Image:
    """A fresh image in the registry, and what a case may sign it with."""

    host: str
    digest: str
    cosign_key: CosignKeys
    key: Key
    monkeypatch: pytest.MonkeyPatch

    @property
    def ref(self) -> str:
        return f"{self.host}/{REPO}@{self.digest}"


def _cosign_signed(image: Image) -> None:
    _cosign_sign(image.cosign_key, image.ref, image.monkeypatch)


def _kit_signed(image: Image) -> None:
    sign_image(image.host, REPO, image.digest, image.key)


def _kit_other_digest(image: Image) -> None:
    other = push_image(image.host, REPO, "other", b"other image")
    sign_image(image.host, REPO, image.digest, image.key, claims=other)


def _cosign_replayed(image: Image) -> None:
    source = push_image(image.host, REPO, "source", b"the image that was signed")
    _cosign_sign(image.cosign_key, f"{image.host}/{REPO}@{source}", image.monkeypatch)
    copy_signatures(image.host, REPO, source, image.digest)


def _unsigned(image: Image) -> None:
    pass


@pytest.mark.parametrize(
    ("case", "signer", "accepted"),
    [
        (_cosign_signed, "cosign", True),
        (_cosign_signed, "openssl", False),  # verified against another key
        (_kit_signed, "openssl", True),
        (_kit_signed, "cosign", False),
        (_kit_other_digest, "openssl", False),
        (_cosign_replayed, "cosign", False),
        (_unsigned, "cosign", False),
    ],
)
def test_cosign_and_the_python_verifier_agree(
    case: Callable[[Image], None], signer: str, accepted: bool, registry: Registry, cosign: str,
    cosign_key: CosignKeys, key: Key, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    digest = push_image(registry.host, REPO, "t", request.node.name.encode())
    image = Image(registry.host, digest, cosign_key, key, monkeypatch)
    case(image)
    ref = image.ref
    public = cosign_key.public_pem if signer == "cosign" else key.public_pem
    assert cosign_verify(cosign, ref, public, tmp_path) is accepted
    assert _python_accepts(ref, public) is accepted


def test_the_build_attests_slsa_provenance_that_cosign_verifies(
    registry: Registry, cosign: str, cosign_key: CosignKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = push_image(registry.host, REPO, "attested", b"attested image")
    ref = f"{registry.host}/{REPO}@{digest}"
    (tmp_path / "uv.lock").write_text("lock")
    predicate = signing.provenance(tmp_path, ref, "a" * 40, "https://github.com/m/w", None, 1_700_000_000)
    monkeypatch.setenv(signing.ENV_PASSWORD, cosign_key.password)
    lines: list[str] = []
    signed = signing.sign(ref, str(cosign_key.private), predicate, lines.append)
    assert signed.predicate_type == "slsaprovenance1"
    assert cosign_key.password not in "\n".join(lines)
    assert cosign_verify(cosign, ref, cosign_key.public_pem, tmp_path, "verify-attestation", "--type",
                         "slsaprovenance1")  # fmt: skip
    # The envelope in the registry: an in-toto statement about this digest, with our predicate.
    tag = digest.replace(":", "-") + ".att"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    url = f"http://{registry.host}/v2/{REPO}/"
    with urllib.request.urlopen(urllib.request.Request(url + f"manifests/{tag}", headers=accept)) as r:
        layer = json.loads(r.read())["layers"][0]
    with urllib.request.urlopen(url + f"blobs/{layer['digest']}") as r:
        statement = json.loads(base64.b64decode(json.loads(r.read())["payload"]))
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"][0]["digest"] == {"sha256": digest.removeprefix("sha256:")}
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {"uri": "git+https://github.com/m/w@" + "a" * 40, "digest": {"gitCommit": "a" * 40}} in deps
    assert any(d["uri"] == "file:uv.lock" for d in deps)
    assert statement["predicate"]["runDetails"]["builder"]["id"] == signing.builder_id(os.environ)


def test_signing_without_the_password_variable_is_refused_clearly(
    registry: Registry, cosign_key: CosignKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(signing.ENV_PASSWORD, raising=False)
    ref = f"{registry.host}/{REPO}@{push_image(registry.host, REPO, 'nopw', b'x')}"
    with pytest.raises(ImageError, match=r"\$COSIGN_PASSWORD is not set"):
        signing.sign(ref, str(cosign_key.private), {}, lambda line: None)
    monkeypatch.setenv(signing.ENV_PASSWORD, "wrong password")
    with pytest.raises(ImageError, match="cosign sign") as refused:
        signing.sign(ref, str(cosign_key.private), {}, lambda line: None)
    assert "wrong password" not in str(refused.value)


def test_keyless_verification_runs_cosign_from_path_and_refuses_what_it_refuses(
    registry: Registry, cosign: str, cosign_key: CosignKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline, no keyless signature can be made or checked (no Fulcio, Rekor or trust root): what
    is tested is that the keyless form needs cosign on PATH and refuses an image cosign refuses."""
    identity = "https://github.com/mobius/preview-worker/.github/workflows/main.yml@refs/heads/main"
    issuer = "https://token.actions.githubusercontent.com"
    ref = f"{registry.host}/{REPO}@{push_image(registry.host, REPO, 'keyless', b'keyless')}"
    _cosign_sign(cosign_key, ref, monkeypatch)  # a key signature: not the identity's
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SignatureError, match="keyless verification needs cosign on PATH"):
        cosign_signatures.verify(ref, identity=identity, issuer=issuer)
    (tmp_path / "cosign").symlink_to(cosign)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(SignatureError, match=f"{ref} has no valid keyless signature by {identity}"):
        cosign_signatures.verify(ref, identity=identity, issuer=issuer)
