"""Running the external tools (buildah, skopeo, debootstrap, tar) with errors that explain themselves."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from infra import runner
from infra.errors import ImageError, ToolFailed

# Which Debian package provides each tool, for the "not installed" message.
PACKAGES: dict[str, str] = {
    "buildah": "buildah",
    "skopeo": "skopeo",
    "podman": "podman",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "docker-registry": "docker-registry",
    "tar": "tar",
}


def require(tool: str) -> str:
    """The absolute path of ``tool``, or an :class:`ImageError` naming the package to install."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        package = PACKAGES.get(tool, tool)
        raise ImageError(f"{tool} is not installed: apt-get install {package} (listed in deps/apt-image.txt)")
    return path


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    cwd: str | None = None,
) -> str:
    """Run ``argv`` to completion and return its stdout; raise :class:`ToolFailed` on failure.

    stderr is kept apart from stdout so that commands whose stdout is data (an
    image id, a digest) are not polluted by progress lines, and is put into the
    error message when the command fails.
    """
    full = [require(argv[0]), *argv[1:]]
    merged = {**os.environ, **(env or {})}
    return runner.run(full, error=ToolFailed, env=merged, timeout=timeout, cwd=cwd)


def remove_tree(path: Path) -> None:
    """Remove ``path``, first unmounting anything left mounted under it (a failed debootstrap's
    /proc, an overlay of a container storage), so the removal never reaches into a mount."""
    prefix = str(path.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        runner.run(["umount", "-l", point], error=ImageError, check=False)  # then rmtree says why
    shutil.rmtree(path)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing): one cache writer at a time."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
