"""Errors of the image tooling, under the deployment half's :class:`InfraError`."""

from __future__ import annotations

from infra.errors import InfraError


class ImageError(InfraError):
    """Building, pushing, inspecting or pinning the worker image failed."""


class ToolFailed(ImageError):
    """An external tool (buildah, skopeo, debootstrap, tar) exited non-zero.

    The message names the command line and the tail of its output, so the cause
    can be read without re-running it.
    """

    def __init__(self, argv: list[str], returncode: int, output: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(f"{' '.join(argv)} exited {returncode}:\n{tail}")
