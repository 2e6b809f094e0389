"""Images and cosign-format signatures written straight to a real loopback registry, for the tests.

Keys are made and used by openssl (P-256, ECDSA-SHA256: what ``cosign generate-key-pair`` makes),
so a test can write a valid signature, one by another key, one that names another digest, or a
hostile one, without a cosign binary; ``test_cosign_agrees.py`` checks that ``cosign verify``
reads these the same way as the Python verifier, and that it reads cosign's own alike.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.supply_chain.cosign_signatures import SIGNATURE_ANNOTATION, SIMPLE_SIGNING, signature_tag

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    done = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


@dataclass(frozen=True)
class Key:
    """A P-256 key pair on disk (PEM), signing with openssl."""

    private: Path
    public_pem: str

    @classmethod
    def make(cls, folder: Path, name: str = "key") -> Key:
        folder.mkdir(parents=True, exist_ok=True)
        private = folder / f"{name}.pem"
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(private))
        public = _openssl("ec", "-in", str(private), "-pubout").decode()
        (folder / f"{name}.pub").write_text(public)
        return cls(private, public)

    def sign(self, data: bytes) -> bytes:
        """The DER ECDSA-SHA256 signature of ``data``."""
        return _openssl("dgst", "-sha256", "-sign", str(self.private), data=data)


def _request(method: str, url: str, body: bytes = b"", content_type: str | None = None) -> Any:
    request = urllib.request.Request(url, data=body if method != "GET" else None, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    return urllib.request.urlopen(request, timeout=30)


def push_blob(host: str, repository: str, data: bytes) -> str:
    """Upload ``data`` as a blob (monolithic upload); its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with _request("POST", f"http://{host}/v2/{repository}/blobs/uploads/") as resp:
        location = resp.headers["Location"]
    if location.startswith("/"):
        location = f"http://{host}{location}"
    sep = "&" if "?" in location else "?"
    with _request("PUT", f"{location}{sep}digest={digest}", data, "application/octet-stream"):
        pass
    return digest


def push_manifest(host: str, repository: str, reference: str, doc: dict[str, Any]) -> str:
    """PUT ``doc`` as the manifest at ``reference`` (a tag); its digest."""
    body = json.dumps(doc, separators=(",", ":")).encode()
    with _request("PUT", f"http://{host}/v2/{repository}/manifests/{reference}", body, OCI_MANIFEST):
        pass
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _descriptor(media_type: str, data: bytes, digest: str, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}


def push_image(host: str, repository: str, tag: str, content: bytes) -> str:
    """A one-layer OCI image whose layer is ``content`` (a different image per content); its digest."""
    diff_id = "sha256:" + hashlib.sha256(content).hexdigest()
    rootfs = {"type": "layers", "diff_ids": [diff_id]}
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": rootfs}).encode()
    layer = push_blob(host, repository, content)
    config_digest = push_blob(host, repository, config)
    return push_manifest(host, repository, tag, {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor("application/vnd.oci.image.config.v1+json", config, config_digest),
        "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar", content, layer)],
    })  # fmt: skip


def payload(host: str, repository: str, digest: str) -> bytes:
    """cosign's simple-signing payload for ``digest``."""
    doc = {
        "critical": {
            "identity": {"docker-reference": f"{host}/{repository}"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def signature_layer(host: str, repository: str, data: bytes, signature: str) -> dict[str, Any]:
    """One layer of a signature manifest: the payload blob (pushed) and its signature annotation."""
    digest = push_blob(host, repository, data)
    return _descriptor(SIMPLE_SIGNING, data, digest, annotations={SIGNATURE_ANNOTATION: signature})


def write_signatures(host: str, repository: str, digest: str, layers: list[dict[str, Any]]) -> None:
    """The ``sha256-<hex>.sig`` manifest of ``digest`` with these signature layers."""
    empty = b"{}"
    config = push_blob(host, repository, empty)
    push_manifest(host, repository, signature_tag(digest), {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor("application/vnd.oci.image.config.v1+json", empty, config),
        "layers": layers,
    })  # fmt: skip


def sign_image(host: str, repository: str, digest: str, key: Key, claims: str | None = None) -> None:
    """Sign ``digest`` with ``key`` as cosign does; ``claims`` puts another digest in the payload."""
    data = payload(host, repository, claims or digest)
    signature = base64.b64encode(key.sign(data)).decode()
    write_signatures(host, repository, digest, [signature_layer(host, repository, data, signature)])


def copy_signatures(host: str, repository: str, source: str, target: str) -> None:
    """Put ``source``'s signature manifest, unchanged, at ``target``'s signature tag (a replay)."""
    accept = {"Accept": OCI_MANIFEST}
    url = f"http://{host}/v2/{repository}/manifests/"
    with urllib.request.urlopen(urllib.request.Request(url + signature_tag(source), headers=accept)) as r:
        body = r.read()
    with _request("PUT", url + signature_tag(target), body, OCI_MANIFEST):
        pass


@dataclass(frozen=True)
class CosignKeys:
    """A key pair ``cosign generate-key-pair`` wrote (``cosign.key`` encrypted with ``password``)."""

    private: Path
    public_pem: str
    password: str


def cosign_keys(cosign: str, folder: Path, password: str = "test-only-password") -> CosignKeys:
    """Make a cosign key pair in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "COSIGN_PASSWORD": password}
    done = subprocess.run([cosign, "generate-key-pair"], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return CosignKeys(folder / "cosign.key", (folder / "cosign.pub").read_text(), password)


def cosign_verify(cosign: str, reference: str, public_pem: str, folder: Path, *extra: str) -> bool:
    """Whether ``cosign verify`` (offline: no transparency log) accepts ``reference`` for the key."""
    key = folder / f"verify-{hashlib.sha256(public_pem.encode()).hexdigest()[:12]}.pub"
    key.write_text(public_pem)
    verb = extra[0] if extra else "verify"
    argv = [cosign, verb, "--key", str(key), "--insecure-ignore-tlog", "--allow-http-registry",
            *extra[1:], reference]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode == 0
