"""buildah (build, push) and skopeo (copy, inspect) without a Docker daemon.

What works on a root sandbox without systemd or cgroup v2 (found by trying, see
README "The worker image"): ``--isolation chroot`` for RUN steps (the default
here, overridable with ``BUILDAH_ISOLATION``), because ``oci`` isolation with
Debian's default runtime crun fails with "cgroups in hybrid mode not supported";
the overlay storage driver works, ``vfs`` too (``STORAGE_DRIVER=vfs``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra.errors import ImageError
from infra.tools.image.registry_server import is_loopback
from infra.tools.image.tools import run

DEFAULT_ISOLATION = "chroot"
BUILD_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Storage:
    """Where buildah keeps images and containers: its default, or a private root (tests, CI)."""

    root: Path | None = None
    driver: str | None = None

    def args(self) -> list[str]:
        """Global flags selecting this storage (also valid for podman)."""
        out: list[str] = []
        if self.root is not None:
            out += ["--root", str(self.root / "storage"), "--runroot", str(self.root / "run")]
        driver = self.driver or os.environ.get("STORAGE_DRIVER")
        if driver:
            out += ["--storage-driver", driver]
        return out


@dataclass(frozen=True)
class BuildSpec:
    """One ``buildah bud`` of a Dockerfile: every input that can change the image."""

    context: Path
    tag: str
    timestamp: int
    build_args: Mapping[str, str] = field(default_factory=dict)
    # Set on the final image by buildah itself. buildah 1.28's layer cache reuses a LABEL step
    # whose build-arg changed (a new --revision got the old commit's label), so labels that change
    # per build are passed here, not through the Dockerfile's LABEL alone.
    labels: Mapping[str, str] = field(default_factory=dict)
    dockerfile: str = "Dockerfile"
    secrets: Mapping[str, Path] = field(default_factory=dict)
    volumes: Mapping[Path, str] = field(default_factory=dict)  # host dir -> path in RUN steps (read-only)
    layers: bool = True
    no_cache: bool = False
    pull_tls_verify: bool = True


def tls_flag(registry_ref: str, name: str = "--tls-verify") -> str:
    """``--tls-verify=false`` for a loopback registry (plain HTTP), ``=true`` anywhere else."""
    host = registry_ref.split("/", 1)[0]
    return f"{name}={'false' if is_loopback(host) else 'true'}"


def build(spec: BuildSpec, storage: Storage) -> str:
    """Build the Dockerfile and return the image ID (``sha256:…`` of its config)."""
    with tempfile.TemporaryDirectory(prefix="iid-") as tmp:
        iidfile = Path(tmp) / "iid"
        argv = [
            "buildah",
            *storage.args(),
            "bud",
            "--file",
            str(spec.context / spec.dockerfile),
            "--tag",
            spec.tag,
            "--iidfile",
            str(iidfile),
            "--format",
            "oci",
            "--timestamp",
            str(spec.timestamp),
            "--identity-label=false",
            f"--layers={'true' if spec.layers else 'false'}",
            f"--tls-verify={'true' if spec.pull_tls_verify else 'false'}",
        ]
        if spec.no_cache:
            argv.append("--no-cache")
        for key, value in sorted(spec.build_args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in sorted(spec.labels.items()):
            argv += ["--label", f"{key}={value}"]
        for sid, src in sorted(spec.secrets.items()):
            argv += ["--secret", f"id={sid},src={src}"]
        for host, target in sorted(spec.volumes.items()):
            argv += ["--volume", f"{host}:{target}:ro"]
        argv.append(str(spec.context))
        env = {"BUILDAH_ISOLATION": os.environ.get("BUILDAH_ISOLATION", DEFAULT_ISOLATION)}
        run(argv, env=env, timeout=BUILD_TIMEOUT)
        return iidfile.read_text().strip()


def push(image: str, destination: str, storage: Storage) -> str:
    """Push a local image to ``destination`` (``host/repo:tag``); return the pushed manifest digest.

    The digest buildah reports is cross-checked with what the registry serves
    (``skopeo inspect``), so a pinned digest is always one the registry has.
    """
    with tempfile.TemporaryDirectory(prefix="digest-") as tmp:
        digestfile = Path(tmp) / "digest"
        run(
            [
                "buildah",
                *storage.args(),
                "push",
                tls_flag(destination),
                "--format",
                "oci",
                "--digestfile",
                str(digestfile),
                image,
                f"docker://{destination}",
            ],
            timeout=600,
        )
        pushed = digestfile.read_text().strip()
    served = inspect_digest(destination)
    if pushed != served:
        raise ImageError(f"buildah pushed {pushed} but {destination} serves {served}")
    return served


def inspect_digest(reference: str) -> str:
    """The manifest digest a registry serves for ``reference`` (``host/repo:tag`` or ``@digest``)."""
    out = run(["skopeo", "inspect", tls_flag(reference), "--format", "{{.Digest}}", f"docker://{reference}"])
    digest = out.strip()
    if not digest.startswith("sha256:") or len(digest) != 71:
        raise ImageError(f"skopeo inspect {reference} gave no digest: {out!r}")
    return digest


def copy(source: str, destination: str) -> str:
    """Copy an image (any containers-image transport) to a registry unchanged; return its digest."""
    run(
        [
            "skopeo",
            "copy",
            "--quiet",
            tls_flag(destination, "--dest-tls-verify"),
            source,
            f"docker://{destination}",
        ],
        timeout=600,
    )
    return inspect_digest(destination)
