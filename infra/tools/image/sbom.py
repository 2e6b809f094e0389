"""The SBOM of a built image: syft's SPDX JSON of its Debian and Python packages (docs/supply-chain.md).

Every ``python -m infra image build`` writes one after the push, for the digest it pushed:
the image is copied from the registry to a scratch OCI layout (checked to be that
digest), syft (pinned in infra/tools/local/toolchain/versions.py, built on first use) scans
the layout, and the SPDX document lands at :func:`sbom_path`. syft runs offline: no update
check, no remote lookups (its defaults for those are off, the update check is turned off here).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.errors import ImageError, InfraError
from infra.tools.image.buildah import tls_flag
from infra.tools.image.tools import run

Log = Callable[[str], None]
FORMAT = "spdx-json"  # syft's name for SPDX 2.3 JSON
SUFFIX = ".spdx.json"
DEFAULT_DIR = Path("dist") / "sbom"  # relative to the build context; .gitignore'd
SCAN_TIMEOUT = 900.0
# syft asks a remote service whether it is the newest release unless told not to.
SYFT_ENV = {"SYFT_CHECK_FOR_APP_UPDATE": "false"}
#: The package URL types of the two kinds of package the SBOM must list.
PYPI, DEB = "pypi", "deb"
_PURL = re.compile(r"pkg:(?P<type>[a-z0-9.+-]+)/")


def sbom_path(out_dir: Path, repository: str, digest: str) -> Path:
    """Where the SBOM of ``repository@digest`` is written: one file per pushed digest."""
    algorithm, _, hexdigest = digest.partition(":")
    return out_dir / f"{repository.replace('/', '_')}-{algorithm}-{hexdigest}{SUFFIX}"


def ready_dir(out_dir: Path) -> Path:
    """``out_dir``, created if missing: checked before a build, so a bad ``--sbom-dir`` fails at once."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(f"--sbom-dir {out_dir} cannot be a folder for the SBOM: {exc}") from exc
    return out_dir


def syft_binary(log: Log) -> str:
    """The pinned syft, built from the Go proxy when it is not cached (a few minutes, once)."""
    # Imported here: only an image build needs the toolchain.
    from infra.tools.local.toolchain.build import ensure_built

    try:
        return ensure_built("syft", log)
    except InfraError as exc:
        raise ImageError(f"cannot build syft for the SBOM: {exc}") from exc


def write(reference: str, dest: Path, log: Log) -> Path:
    """Scan the pushed ``reference`` (``registry/repository@sha256:…``) into ``dest``; return ``dest``."""
    name, _, digest = reference.partition("@")
    if not digest.startswith("sha256:"):
        raise ImageError(f"an SBOM is written for a digest reference (name@sha256:…), got {reference!r}")
    syft = syft_binary(log)
    ready_dir(dest.parent)
    with tempfile.TemporaryDirectory(prefix="sbom-") as tmp:
        layout, digestfile = Path(tmp) / "oci", Path(tmp) / "digest"
        # The registry's own bytes (skopeo verifies each blob), so the SBOM is of exactly that digest.
        run(["skopeo", "copy", "--quiet", tls_flag(reference, "--src-tls-verify"), "--digestfile",
             str(digestfile), f"docker://{reference}", f"oci:{layout}:sbom"], timeout=600)  # fmt: skip
        copied = digestfile.read_text().strip()
        if copied != digest:
            raise ImageError(f"the image copied for the SBOM is {copied}, not the pushed {digest}")
        partial = dest.with_name(f".{dest.name}.partial")
        argv = [syft, "scan", f"oci-dir:{layout}", "--quiet", "--output", f"{FORMAT}={partial}",
                "--source-name", name, "--source-version", digest]  # fmt: skip
        try:
            run(argv, env=SYFT_ENV, timeout=SCAN_TIMEOUT)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
    log(f"SBOM ({FORMAT}) of {digest}: {dest}")
    return dest


def load(path: Path) -> dict[str, Any]:
    """An SPDX JSON document; an :class:`ImageError` naming the file when it is not one."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read the SBOM {path}: {exc}") from exc
    if not isinstance(doc, dict) or not str(doc.get("spdxVersion", "")).startswith("SPDX-"):
        raise ImageError(f"{path} is not an SPDX JSON document (no spdxVersion)")
    return doc


def packages(doc: dict[str, Any], purl_type: str) -> set[tuple[str, str]]:
    """The ``(name, version)`` of every package whose package URL is of ``purl_type`` (``pypi``, ``deb``)."""
    found: set[tuple[str, str]] = set()
    for package in doc.get("packages", []):
        for ref in package.get("externalRefs", []):
            match = _PURL.match(str(ref.get("referenceLocator", "")))
            if ref.get("referenceType") == "purl" and match and match["type"] == purl_type:
                found.add((str(package["name"]), str(package.get("versionInfo", ""))))
    return found
