"""A Debian bookworm base image with python3, made from a debootstrap'd rootfs and cached.

Where no registry can be pulled from (this machine, CI), the Dockerfile's
``BASE_IMAGE`` is overridden with this image. It is written as an OCI image
layout directory under ``~/.cache/mobius-preview-worker/image-base/<key>/``,
where ``<key>`` hashes every input (suite, mirror, packages, architecture,
recipe version), so a changed input gives a new cache entry and an unchanged
one is reused without touching the network. The layer is a sorted tarball with
every mtime at 0 and gzip without a timestamp, so the image is byte-identical
whenever the Debian packages are.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.errors import ImageError, ToolFailed
from infra.tools.image.tools import locked, remove_tree, require, run

RECIPE_VERSION = 3  # bump when _clean_rootfs or the image config below changes
REF_NAME = "bookworm"  # the tag inside the OCI layout: oci:<dir>:bookworm
EPOCH = "1970-01-01T00:00:00Z"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Left out of the rootfs: caches, logs and host-specific files; a container
# runtime provides /dev, /proc, /sys, resolv.conf and hostname itself.
_DROP = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/log",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "etc/machine-id",
)
# Files a container runtime bind-mounts over: present (with neutral contents) so that
# running the image does not have to create them, which would write to the root filesystem.
_MOUNT_TARGETS = {
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "etc/hostname": "",
    "etc/resolv.conf": "",
}


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/mobius-preview-worker`` (default ``~/.cache/mobius-preview-worker``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "mobius-preview-worker"


def find_mirror(apt_dir: Path = Path("/etc/apt"), suite: str = "bookworm") -> str:
    """The Debian mirror URL that apt uses for ``suite`` (deb822 ``.sources`` or one-line lists)."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, flags=re.M))
                if suite in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
                    return fields.get("URIs", "").split()[0]
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                    return words[1]
    raise ImageError(f"no apt source for Debian {suite} under {apt_dir}; pass --mirror URL")


def dpkg_arch() -> str:
    """The host's Debian architecture (``amd64``, ``arm64``), which is also the OCI name."""
    return run(["dpkg", "--print-architecture"]).strip()


@dataclass(frozen=True)
class BaseSpec:
    """Everything the base image is made from; its hash is the cache key."""

    mirror: str
    arch: str
    suite: str = "bookworm"
    packages: tuple[str, ...] = ("python3", "python3-venv")
    recipe: int = field(default=RECIPE_VERSION)

    @classmethod
    def for_host(cls, mirror: str | None = None) -> BaseSpec:
        """The spec for this machine: its apt mirror (unless given; Debian's own on non-Debian hosts)."""
        if mirror is None:
            try:
                mirror = find_mirror()
            except ImageError:
                mirror = DEFAULT_MIRROR
        return cls(mirror=mirror, arch=dpkg_arch())

    def key(self) -> str:
        """A short stable hash of every input."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def debootstrap_argv(self, target: Path) -> list[str]:
        """The debootstrap command line that makes the rootfs in ``target``."""
        include = ",".join(self.packages)
        return [
            "debootstrap",
            "--variant=minbase",
            f"--arch={self.arch}",
            f"--include={include}",
            self.suite,
            str(target),
            self.mirror,
        ]


@dataclass(frozen=True)
class BaseImage:
    """A cached base image: its OCI layout directory and manifest digest."""

    layout: Path
    digest: str

    @property
    def oci_ref(self) -> str:
        """The image as a containers-image transport reference (for skopeo/buildah)."""
        return f"oci:{self.layout}:{REF_NAME}"


def ensure_base(
    spec: BaseSpec | None = None, cache: Path | None = None, log: Callable[[str], None] = print
) -> BaseImage:
    """Return the cached base image for ``spec``, building it first if it is not cached yet."""
    spec = spec or BaseSpec.for_host()
    root = (cache or cache_home()) / "image-base"
    root.mkdir(parents=True, exist_ok=True)
    entry = root / spec.key()
    with locked(root / ".lock"):
        if not (entry / "base.json").is_file():
            log(f"building base image {spec.suite}+{','.join(spec.packages)} into {entry}")
            _build(spec, entry)
            _prune(root, keep=entry)
        info = json.loads((entry / "base.json").read_text())
    return BaseImage(layout=entry / "oci", digest=str(info["digest"]))


def _build(spec: BaseSpec, entry: Path) -> None:
    if os.geteuid() != 0:
        raise ImageError(
            "building the base image needs root (debootstrap): "
            "sudo env HOME=$HOME .venv/bin/python -m infra image base"
        )
    work = Path(tempfile.mkdtemp(prefix="build-", dir=entry.parent))
    rootfs = work / "rootfs"
    try:
        try:
            argv = spec.debootstrap_argv(rootfs)
            if KEYRING.is_file():  # explicit, for hosts whose default keyring is not Debian's
                argv.insert(1, f"--keyring={KEYRING}")
            run(argv, timeout=1800)
        except ToolFailed as exc:
            log_file = rootfs / "debootstrap" / "debootstrap.log"
            detail = log_file.read_text(errors="replace")[-2000:] if log_file.is_file() else ""
            raise ImageError(f"{exc}\n{detail}") from exc
        _clean_rootfs(rootfs)
        digest = _write_layout(rootfs, work / "oci", spec)
        (work / "base.json").write_text(json.dumps({"digest": digest, "spec": asdict(spec)}, indent=2) + "\n")
        remove_tree(rootfs)
        if entry.exists():
            remove_tree(entry)
        work.rename(entry)
    finally:
        if work.exists():
            remove_tree(work)


def _prune(root: Path, keep: Path) -> None:
    """Drop cache entries of older inputs: only the current base is ever used."""
    for old in root.iterdir():
        if old != keep and old.is_dir() and (old / "base.json").is_file():
            remove_tree(old)


def _clean_rootfs(rootfs: Path) -> None:
    for rel in _DROP:
        path = rootfs / rel
        if path.is_dir() and not path.is_symlink():
            _empty_dir(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    for special in ("dev", "proc", "sys", "run", "tmp"):
        if (rootfs / special).is_dir():
            _empty_dir(rootfs / special)
    for rel, text in _MOUNT_TARGETS.items():
        path = rootfs / rel
        path.unlink(missing_ok=True)
        path.write_text(text)
        path.chmod(0o644)
    # Container runtimes create this link when it is missing, a write to the root filesystem.
    mtab = rootfs / "etc" / "mtab"
    if not mtab.is_symlink():
        mtab.unlink(missing_ok=True)
        mtab.symlink_to("/proc/mounts")


def _empty_dir(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            remove_tree(child)
        else:
            child.unlink()


def _write_layout(rootfs: Path, layout: Path, spec: BaseSpec) -> str:
    """Write ``rootfs`` as a one-layer OCI image layout; return the manifest digest."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    names = sorted(os.listdir(rootfs))
    tar = [
        require("tar"),
        "--create",
        "--sort=name",
        "--format=posix",
        "--numeric-owner",
        "--mtime=@0",
        "--clamp-mtime",
        "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
        "-C",
        str(rootfs),
        "--file=-",
        *names,
    ]
    diff = hashlib.sha256()
    tmp = blobs / "layer.tmp"
    # Popen, not infra.runner: the layer (hundreds of MB) is streamed through gzip and the hash,
    # never held in memory as the runner's captured stdout would be.
    with subprocess.Popen(tar, stdout=subprocess.PIPE) as proc, tmp.open("wb") as raw:
        out = proc.stdout
        assert out is not None
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
            for chunk in iter(lambda: out.read(1 << 20), b""):
                diff.update(chunk)
                gz.write(chunk)
    if proc.returncode != 0:
        raise ImageError(f"tar of {rootfs} exited {proc.returncode}")
    layer = _blob_of_file(tmp, blobs)
    config = {
        "created": EPOCH,
        "architecture": spec.arch,
        "os": "linux",
        "config": {"Env": [PATH_ENV, "LANG=C.UTF-8"], "Cmd": ["python3"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff.hexdigest()}"]},
        "history": [{"created": EPOCH, "created_by": " ".join(spec.debootstrap_argv(Path("/")))}],
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(config, blobs)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
    }
    top = _blob(manifest, blobs)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                **top,
                "annotations": {"org.opencontainers.image.ref.name": REF_NAME},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index, sort_keys=True))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return str(top["digest"])


def _blob(doc: dict[str, Any], blobs: Path) -> dict[str, Any]:
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _blob_of_file(path: Path, blobs: Path) -> dict[str, Any]:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    size = path.stat().st_size
    path.rename(blobs / sha.hexdigest())
    return {"digest": f"sha256:{sha.hexdigest()}", "size": size}
