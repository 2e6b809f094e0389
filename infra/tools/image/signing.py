"""Sign a pushed image digest and attach its SLSA provenance, with cosign and a key.

``python -m infra image build --sign-key KEY`` (or ``$IMAGE_SIGNING_KEY``) runs, after the push,
``cosign sign`` (the ``sha256-<hex>.sig`` signature the deploy side checks) and ``cosign attest
--type slsaprovenance1`` (a DSSE envelope of the predicate :func:`provenance` writes, in
``sha256-<hex>.att``). KEY is a cosign key reference: a file (``cosign.key``) or ``env://VAR``;
its password is ``$COSIGN_PASSWORD``, which cosign reads from the environment, so it is never on
a command line or in a log. Offline here: no Rekor upload (``--tlog-upload=false``), so the
signatures carry no transparency-log entry (docs/supply-chain.md). ``--sign-key keyless`` signs
with the CI's OIDC identity instead (a Fulcio certificate, logged in Rekor: GitHub's ``id-token:
write``, as main.yml's image job does). Without a key the image is pushed unsigned and the build
says so loudly: stacks that name a signer refuse it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra import runner
from infra.errors import ImageError
from infra.supply_chain.registry_reads import is_loopback
from infra.tools.local.toolchain import build as toolchain
from infra.tools.local.toolchain.versions import COSIGN_VERSION

Log = Callable[[str], None]
#: Where the build finds the signing key when ``--sign-key`` is not given.
ENV_SIGNING_KEY = "IMAGE_SIGNING_KEY"
ENV_PASSWORD = "COSIGN_PASSWORD"
#: ``--sign-key keyless``: the CI's OIDC identity signs (Fulcio and Rekor must be reachable).
KEYLESS = "keyless"
PREDICATE_TYPE = "slsaprovenance1"  # https://slsa.dev/provenance/v1
SBOM_PREDICATE_TYPE = "spdxjson"  # the SBOM infra/tools/image/sbom.py writes
BUILD_TYPE = "https://github.com/mobius/preview-worker/blob/main/docs/supply-chain.md#provenance"
LOCAL_BUILDER = "urn:mobius-preview-worker:python-m-infra-image-build:local"
#: The build inputs whose digests the provenance records (besides the commit and the base image).
INPUT_FILES = ("Dockerfile", "pyproject.toml", "uv.lock")


@dataclass(frozen=True)
class Signed:
    """What the build attached to the digest: the key reference used and the predicate type."""

    key: str
    predicate_type: str


def signing_key(flag: str | None) -> str | None:
    """The key reference to sign with: ``--sign-key``, else ``$IMAGE_SIGNING_KEY``, else None."""
    return flag or os.environ.get(ENV_SIGNING_KEY) or None


def cosign_binary(log: Log) -> str:
    """cosign of the pinned version: on PATH (sigstore/cosign-installer on GitHub), else built here."""
    found = shutil.which("cosign")
    if found:
        done = runner.call([found, "version", "--json"], error=ImageError, timeout=30)
        if done.returncode == 0 and f'"v{COSIGN_VERSION}"' in done.stdout:
            return found
    return toolchain.ensure_built("cosign", log)


def builder_id(env: Mapping[str, str] = os.environ) -> str:
    """The workflow that ran the build (``GITHUB_WORKFLOW_REF`` on GitHub), else the local builder."""
    server, ref = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_WORKFLOW_REF")
    return f"{server}/{ref}" if server and ref else LOCAL_BUILDER


def _file_digest(path: Path) -> dict[str, str]:
    return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()} if path.is_file() else {}


def provenance(
    context: Path, reference: str, revision: str, source: str | None, base_image: str | None, timestamp: int
) -> dict[str, Any]:
    """The SLSA v1 provenance predicate of one build: its source, inputs, base image and builder."""
    deps: list[dict[str, Any]] = []
    if source and revision != "unknown":
        deps.append({"uri": f"git+{source}@{revision}", "digest": {"gitCommit": revision}})
    if base_image and "@sha256:" in base_image:
        name, digest = base_image.split("@", 1)
        deps.append({"uri": f"oci://{name}", "digest": {"sha256": digest.removeprefix("sha256:")}})
    for name in INPUT_FILES:
        hashed = _file_digest(context / name)
        if hashed:
            deps.append({"uri": f"file:{name}", "digest": hashed})
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"image": reference.split("@", 1)[0], "revision": revision},
            "internalParameters": {"sourceDateEpoch": timestamp},
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": builder_id()},
            "metadata": {"invocationId": os.environ.get("GITHUB_RUN_ID", "local")},
        },
    }


def _cosign(cosign: str, verb: str, key: str, reference: str, *extra: str) -> None:
    signer = [] if key == KEYLESS else ["--key", key, "--tlog-upload=false"]
    argv = [cosign, verb, "--yes", *signer, *extra]
    if is_loopback(reference.split("/", 1)[0]):
        argv.append("--allow-http-registry")
    # stdin closed: a key without $COSIGN_PASSWORD must fail, not wait for a prompt.
    runner.run([*argv, reference], error=ImageError, stdin="", timeout=300)


def sign(reference: str, key: str, predicate: dict[str, Any], log: Log, sbom: Path | None = None) -> Signed:
    """Sign ``reference`` (``repo@sha256:…``) and attest its provenance, with the key ``key``; with
    ``sbom`` (the build's SPDX JSON), attest that too (``--type spdxjson``), so the SBOM travels
    with the digest in the registry."""
    if key != KEYLESS and ENV_PASSWORD not in os.environ:
        raise ImageError(
            f"signing with {key}: ${ENV_PASSWORD} is not set (the key's password; empty for none)"
        )
    cosign = cosign_binary(log)
    _cosign(cosign, "sign", key, reference)
    with tempfile.TemporaryDirectory(prefix="provenance-") as tmp:
        path = Path(tmp) / "predicate.json"
        path.write_text(json.dumps(predicate, indent=2, sort_keys=True))
        _cosign(cosign, "attest", key, reference, "--type", PREDICATE_TYPE, "--predicate", str(path))
    log(f"signed {reference} and attested its provenance ({PREDICATE_TYPE}) with {key}")
    if sbom is not None:
        _cosign(cosign, "attest", key, reference, "--type", SBOM_PREDICATE_TYPE, "--predicate", str(sbom))
        log(f"attested {reference}'s SBOM ({SBOM_PREDICATE_TYPE}) with {key}")
    return Signed(key, PREDICATE_TYPE)


def unsigned_note(reference: str) -> str:
    """What the build prints when no key was given (a stack that names a signer refuses the image)."""
    return (
        f"NOT SIGNED: {reference} was pushed without a signature or provenance (no --sign-key or "
        f"${ENV_SIGNING_KEY}); stacks whose imageSignature names a signer refuse it (docs/supply-chain.md)"
    )
