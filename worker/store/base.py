"""The artifact-store interface every backend implements, and its one error.

A store keeps artifact sets (see ``worker.store.artifacts`` for the manifest format).
Its contract: a reader sees no set or a complete one (renditions are stored
first, the manifest last, and the manifest names only stored renditions); the
same job ID keeps the first complete set; an unreachable store raises
:class:`StoreUnavailableError`, a transient error, so the job is retried.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.errors import StoreError
from worker.render.registry import Rendition


class StoreUnavailableError(StoreError):
    """The artifact store could not be reached or refused the request; retrying may help."""


@dataclass(frozen=True)
class Download:
    """Where one rendition's bytes are: a local ``path`` the API serves, or a presigned ``url``."""

    content_type: str
    path: Path | None = None
    url: str | None = None


@dataclass
class SweepReport:
    """What a retention sweep deleted: complete sets (by job ID) and stray objects of unfinished writes."""

    deleted_sets: list[str] = field(default_factory=list)
    deleted_strays: int = 0

    def as_json(self) -> dict[str, Any]:
        """The report as printed by ``python -m worker sweep``."""
        return {
            "deleted": len(self.deleted_sets),
            "jobIds": sorted(self.deleted_sets),
            "strays": self.deleted_strays,
        }


class ArtifactStore(abc.ABC):
    """One place artifact sets are written to and read from."""

    kind: str

    @abc.abstractmethod
    def write_set(
        self, job_id: str, media_type: str, renditions: Sequence[Rendition], metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """Store the renditions, then the manifest; return the manifest now visible (an earlier one wins)."""

    @abc.abstractmethod
    def load_manifest(self, job_id: str) -> dict[str, Any] | None:
        """The job's manifest, or None if it has no complete set."""

    @abc.abstractmethod
    def download(self, job_id: str, entry: dict[str, Any]) -> Download:
        """Where the rendition described by manifest ``entry`` can be downloaded."""

    @abc.abstractmethod
    def sweep(self, cutoff: float) -> SweepReport:
        """Delete every set (manifest first) and stray object last written before ``cutoff`` (epoch s)."""

    def apply_retention(self, days: int) -> bool:
        """Make the service itself expire artifacts after ``days`` (0: stop); False if it cannot."""
        del days
        return False

    def find(self, job_id: str, name: str) -> Download | None:
        """The download of rendition ``name`` of a complete set, or None."""
        manifest = self.load_manifest(job_id)
        if manifest is None:
            return None
        for entry in manifest["renditions"]:
            if entry["name"] == name:
                return self.download(job_id, entry)
        return None
