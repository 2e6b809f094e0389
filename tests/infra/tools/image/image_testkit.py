"""Helpers for the image tests: a build-context snapshot, registry reads, podman, redis-server."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.tools.image.buildah import Storage

REPO = Path(__file__).resolve().parents[4]
# What the Dockerfile's build context holds (the .dockerignore allowlist), copied once per
# session so that edits other people make to the work tree mid-run cannot change the inputs.
CONTEXT_ITEMS = (
    "Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock", "worker", "mobius_preview_client", "schemas",
)  # fmt: skip
REVISION = "0123456789abcdef0123456789abcdef01234567"
TIMESTAMP = 1_700_000_000  # 2023-11-14T22:13:20Z
REPOSITORY = "mobius/preview-worker"
CODE_CHANGE = "\n# A code change: the image digest must change with it.\n"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def snapshot_context(dest: Path) -> Path:
    """Copy the build context's inputs to ``dest`` (no bytecode) and return ``dest``."""
    dest.mkdir(parents=True)
    for item in CONTEXT_ITEMS:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / item)
    return dest


def _get(url: str, accept: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as resp:
        body: bytes = resp.read()
        return body


def manifest(host: str, repository: str, digest: str) -> dict[str, Any]:
    """The OCI manifest the registry serves (``GET /v2/<repo>/manifests/<digest>``)."""
    doc: dict[str, Any] = json.loads(_get(f"http://{host}/v2/{repository}/manifests/{digest}", OCI_MANIFEST))
    return doc


def raw_manifest(host: str, repository: str, digest: str) -> bytes:
    """The manifest's exact bytes, whose sha256 is the digest."""
    return _get(f"http://{host}/v2/{repository}/manifests/{digest}", OCI_MANIFEST)


def catalog(host: str) -> list[str]:
    """The repositories the registry holds (``GET /v2/_catalog``)."""
    repos: list[str] = json.loads(_get(f"http://{host}/v2/_catalog"))["repositories"]
    return repos


def image_config(host: str, repository: str, digest: str) -> dict[str, Any]:
    """The image config (labels, user, entrypoint, env, history): the blob the manifest names."""
    blob = manifest(host, repository, digest)["config"]["digest"]
    config: dict[str, Any] = json.loads(_get(f"http://{host}/v2/{repository}/blobs/{blob}"))
    return config


@dataclass(frozen=True)
class Entry:
    """One member of a layer tarball."""

    name: str
    mode: int
    uid: int
    gid: int
    mtime: int
    kind: str  # "file", "dir", "symlink", "other"


def layer_entries(host: str, repository: str, digest: str) -> list[Entry]:
    """Every member of one layer blob, streamed from the registry."""
    url = f"http://{host}/v2/{repository}/blobs/{digest}"
    out: list[Entry] = []
    with urllib.request.urlopen(url, timeout=60) as resp, tarfile.open(fileobj=resp, mode="r|gz") as tar:
        for m in tar:
            kind = "file" if m.isfile() else "dir" if m.isdir() else "symlink" if m.issym() else "other"
            out.append(Entry(m.name.lstrip("./"), m.mode, m.uid, m.gid, int(m.mtime), kind))
    return out


def layer_file(host: str, repository: str, digest: str, name: str) -> bytes:
    """The bytes of one file in a layer blob."""
    url = f"http://{host}/v2/{repository}/blobs/{digest}"
    with urllib.request.urlopen(url, timeout=60) as resp, tarfile.open(fileobj=resp, mode="r|gz") as tar:
        for m in tar:
            if m.name.lstrip("./") == name:
                f = tar.extractfile(m)
                assert f is not None
                return f.read()
    raise AssertionError(f"{name} not in layer {digest}")


class Podman:
    """podman on the tests' private storage, set up for this sandbox.

    runc, not Debian's default crun ("cgroups in hybrid mode not supported"); cgroupfs
    because there is no systemd; explicit ulimits because podman's defaults (nofile and
    nproc 1048576) are above the sandbox's hard limits ("error setting rlimit type 7").
    """

    def __init__(self, storage: Storage) -> None:
        binary = shutil.which("podman")
        if binary is None or shutil.which("runc") is None:
            pytest.fail("podman and runc are not installed (deps/apt-image.txt); the run test needs them")
        self.argv = [
            binary,
            *storage.args(),
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ]

    def __call__(self, *args: str, check: bool = True) -> str:
        done = subprocess.run([*self.argv, *args], capture_output=True, text=True, timeout=120, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done.stdout

    def run_detached(self, name: str, image: str, env: dict[str, str], volume: str, *command: str) -> str:
        """Start a container as the image defines it (user, entrypoint), read-only root, host network."""
        flags = [
            "run",
            "--detach",
            "--name",
            name,
            "--network",
            "host",
            "--read-only",
            "--ulimit",
            "nofile=4096:4096",
            "--ulimit",
            "nproc=4096:4096",
            "--volume",
            volume,
        ]
        for key, value in sorted(env.items()):
            flags += ["--env", f"{key}={value}"]
        return self(*flags, image, *command).strip()

    def uids(self, name: str) -> list[int]:
        """Real, effective, saved and filesystem UID of the container's main process."""
        pid = self("inspect", "--format", "{{.State.Pid}}", name).strip()
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
        raise AssertionError(f"no Uid line for pid {pid}")
