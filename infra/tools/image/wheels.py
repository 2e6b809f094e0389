"""A local wheelhouse for offline image builds: the Dockerfile's locked wheels, downloaded once.

The Dockerfile's builder stage downloads its wheels from PyPI. Given a
wheelhouse (``python -m infra image build --wheelhouse DIR``) it installs from
that directory instead, with no index at all, so a build needs no network; the
tests build this way. The wheels are the same files either way (pip checks each
against the hash in ``uv.lock``), so the image digest does not depend on it.

The wheelhouse is keyed by the exported requirements and the uv version, and
cached under ``~/.cache/mobius-preview-worker/wheelhouse/<key>/``. What to
export (``UV_VERSION``, ``PRUNE``) is read from the Dockerfile's ``ARG``
defaults, so it is defined once.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from infra.errors import ImageError
from infra.tools.image.rootfs import cache_home, dpkg_arch
from infra.tools.image.tools import locked, remove_tree, run

# The base images' Python and C library: python:3.11-slim and Debian bookworm (glibc 2.36).
LAYOUT_VERSION = 2  # bump when what goes into the wheelhouse changes
PYTHON_VERSION = "3.11"
GLIBC = "2_36"
_ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}


def dockerfile_arg(context: Path, name: str) -> str:
    """The default value of ``ARG <name>=…`` in ``context/Dockerfile``."""
    text = (context / "Dockerfile").read_text()
    match = re.search(rf'^ARG {name}=(?:"([^"]*)"|(\S*))\s*$', text, flags=re.M)
    if match is None:
        raise ImageError(f"the Dockerfile has no `ARG {name}=…` default")
    return match.group(1) if match.group(1) is not None else match.group(2)


def requirements(context: Path) -> str:
    """The locked runtime requirements with hashes, exported exactly as the Dockerfile does."""
    prune = [arg for pkg in dockerfile_arg(context, "PRUNE").split() for arg in ("--prune", pkg)]
    uv = shutil.which("uv")
    if uv is None:
        raise ImageError("uv is not installed (./dev setup installs it)")
    argv = [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header", *prune]
    return run(argv, cwd=str(context))


def ensure_wheelhouse(context: Path, cache: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Return the wheelhouse for ``context``'s lock, downloading it first if it is not cached."""
    reqs = requirements(context)
    uv_version = dockerfile_arg(context, "UV_VERSION")
    arch = _ARCHES.get(dpkg_arch())
    if arch is None:
        raise ImageError(f"no wheel platform known for Debian architecture {dpkg_arch()!r}")
    inputs = f"{LAYOUT_VERSION}\n{reqs}\nuv=={uv_version}\n{arch}\n{GLIBC}"
    key = hashlib.sha256(inputs.encode()).hexdigest()[:16]
    root = (cache or cache_home()) / "wheelhouse"
    entry = root / key
    if (entry / ".complete").is_file():
        return entry
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / ".lock"):
        if not (entry / ".complete").is_file():
            _download(root, entry, reqs, uv_version, arch, log)
    return entry


def _download(
    root: Path, entry: Path, reqs: str, uv_version: str, arch: str, log: Callable[[str], None]
) -> None:
    log(f"downloading the locked wheels into {entry}")
    work = Path(tempfile.mkdtemp(prefix="dl-", dir=root))
    try:
        # Markers are dropped: they are evaluated against the base's Python in the build (bookworm's
        # 3.11.2 needs async-timeout, a newer 3.11 does not), not against the one running pip here.
        (work / "requirements.txt").write_text(re.sub(r" ; [^\\\n]*", " ", reqs))
        (work / "tools.txt").write_text(f"uv=={uv_version}\n")
        python = sys.executable if _has_pip(sys.executable) else "python3"
        pip = [python, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(work), *_platform(arch)]
        run([*pip, "--require-hashes", "--requirement", str(work / "requirements.txt")], timeout=900)
        run([*pip, "--requirement", str(work / "tools.txt")], timeout=900)
        (work / ".complete").write_text(entry.name + "\n")
        for old in root.iterdir():  # older locks' wheelhouses; only one is ever used
            if old != work and old.is_dir():
                remove_tree(old)
        work.rename(entry)
    finally:
        if work.exists():
            remove_tree(work)


def _platform(arch: str) -> list[str]:
    """pip flags for CPython 3.11 wheels that run on glibc 2.36: every manylinux tag up to it."""
    newest = int(GLIBC.split("_")[1])
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(newest, 4, -1)]
    tags += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    abi = f"cp{PYTHON_VERSION.replace('.', '')}"
    flags = [
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--abi",
        abi,
    ]
    for tag in tags:
        flags += ["--platform", tag]
    return flags


def _has_pip(python: str) -> bool:
    try:
        run([python, "-m", "pip", "--version"])
    except ImageError:
        return False
    return True
