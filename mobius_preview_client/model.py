"""The job as types: ``TypedDict``s of ``schemas/preview-job.schema.json``, for a type checker.

They say what TypeScript's types say (keys, required ones, enums); the values' bounds, "exactly
one source" and unique output names are the validator's (:func:`mobius_preview_client.validate`),
which ``enqueue`` runs. ``tests/worker/contract/test_job_model.py`` checks these against the schema.
"""

# No ``from __future__ import annotations``: TypedDict reads NotRequired from evaluated annotations.
from typing import Literal, NotRequired, TypedDict

Format = Literal["webp", "png", "jpeg"]
Fit = Literal["contain", "cover"]


class InlineSource(TypedDict):
    """The source's bytes, base64."""

    inline: str


class PathSource(TypedDict):
    """A file under the worker's ``PREVIEW_INPUT_ROOT``."""

    path: str


class UrlSource(TypedDict):
    """An http(s) URL on the worker's host allowlist."""

    url: str


Source = InlineSource | PathSource | UrlSource


class Output(TypedDict):
    """One rendition to make."""

    name: str
    format: Format
    width: int
    height: int
    fit: NotRequired[Fit]
    quality: NotRequired[int]


class PreviewJob(TypedDict):
    """One preview job: a source and the renditions to make from it."""

    source: Source
    outputs: list[Output]
    jobId: NotRequired[str]
    dryRun: NotRequired[bool]
    priority: NotRequired[int]
    metadata: NotRequired[dict[str, str | int | float | bool | None]]
