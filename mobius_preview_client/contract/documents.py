"""The documents the worker and the job API write, declared once as typed dicts.

:mod:`worker.api.openapi` turns these types into the OpenAPI description's schemas, from which
the npm package's TypeScript types are generated. The status document and the result are
annotated with them where they are built, so mypy checks every key and value there; every
document the API sends (the manifest and health answers too) is checked against the description
by ``tests/worker/api/test_api_openapi.py``, which refuses a key missing or undeclared.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired

# typing_extensions: pydantic reads a TypedDict from typing only on Python 3.12 and later.
from typing_extensions import TypedDict

#: What ``GET …/status`` reports: BullMQ's own states (``getState``), ``prioritized`` included.
JobState = Literal["waiting", "prioritized", "waiting-children", "active", "delayed", "completed", "failed"]


class JobStatus(TypedDict):
    """``GET /api/preview/job/{jobId}/status``: one job's state, attempts and progress."""

    jobId: str
    state: JobState
    attemptsMade: int
    attempts: int
    progress: float | dict[str, Any]
    failedReason: str | None
    timestamp: int
    processedOn: int | None
    finishedOn: int | None


class JobResult(TypedDict):
    """A completed job's BullMQ return value: ``completed`` (rendered) or ``dryrun`` (validated only)."""

    outcome: Literal["completed", "dryrun"]
    renditions: int


class RenditionEntry(TypedDict):
    """One rendition in an artifact manifest; ``path`` is relative to the artifact set."""

    name: str
    path: str
    format: Literal["webp", "png", "jpeg"]
    contentType: str
    width: int
    height: int
    bytes: int
    sha256: str


class ManifestSource(TypedDict):
    """What the worker found the source to be."""

    mediaType: str


class Manifest(TypedDict):
    """An artifact set's ``manifest.json``, as the store keeps it."""

    jobId: str
    source: ManifestSource
    createdAt: float
    metadata: dict[str, str | float | bool | None]
    renditions: list[RenditionEntry]


class ArtifactRendition(RenditionEntry):
    """A manifest entry as the API answers it: with where to download it."""

    url: str


class ArtifactManifest(TypedDict):
    """``GET /api/preview/job/{jobId}/artifact``: the manifest, each rendition with its URL.

    ``urlExpiresInSeconds`` comes with the ``s3`` store, whose URLs are presigned."""

    jobId: str
    source: ManifestSource
    createdAt: float
    metadata: dict[str, str | float | bool | None]
    renditions: list[ArtifactRendition]
    urlExpiresInSeconds: NotRequired[int]
