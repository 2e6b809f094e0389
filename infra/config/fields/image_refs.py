"""Image references: the one accepted form, ``repository@sha256:<64 lowercase hex>``, and its parts.

The stack config, the release tool (``--image``) and the policy pack all check images with these.
"""

from __future__ import annotations

import re
from typing import Any

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_PART = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_REGISTRY = rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*(?::[0-9]+)?/)"
REPOSITORY_RE = re.compile(rf"{_REGISTRY}?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
#: The one accepted image form: ``repository@sha256:<64 lowercase hex>`` (no tag).
IMAGE_RE = re.compile(REPOSITORY_RE.pattern + r"@sha256:[0-9a-f]{64}")


def validate_image_ref(ref: str) -> str:
    """Return ``ref`` if it is ``repository@sha256:<64 hex>``; else raise ValueError saying why."""
    repo, at, digest = ref.partition("@")
    last = repo.rsplit("/", 1)[-1]
    if not at:
        if ":" in last:
            raise ValueError(f"must be pinned by digest (repository@sha256:<64 hex>), got tag {ref!r}")
        raise ValueError(f"must be repository@sha256:<64 hex>, got {ref!r}")
    if ":" in last:
        raise ValueError(f"must not carry a tag next to the digest, got {ref!r}")
    if not DIGEST_RE.fullmatch(digest):
        raise ValueError(f"digest must be sha256:<64 lowercase hex>, got {digest!r}")
    if not REPOSITORY_RE.fullmatch(repo):
        raise ValueError(f"repository {repo!r} is not a valid image repository")
    return ref


def split_image(ref: str) -> tuple[str, str]:
    """``repo@sha256:…`` → ``(repo, "sha256:…")``."""
    repo, _, digest = ref.partition("@")
    return repo, digest


def check_image(cls: Any, v: str) -> str:
    """A field check for image references (see :func:`validate_image_ref`)."""
    return validate_image_ref(v)
