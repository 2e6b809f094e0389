"""The ``filesystem`` store: artifact sets under ``DATA_DIR/<jobId>/`` (single node, local default)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worker import constants as c
from worker.render.registry import Rendition
from worker.store import artifacts
from worker.store.base import ArtifactStore, Download, StoreUnavailableError, SweepReport


class FilesystemStore(ArtifactStore):
    """Sets renamed into place atomically by :mod:`worker.store.artifacts`; the API serves the bytes."""

    kind = c.STORE_FILESYSTEM

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def write_set(
        self, job_id: str, media_type: str, renditions: Sequence[Rendition], metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """See :func:`worker.store.artifacts.write_set`; a full or read-only disk is a transient error."""
        try:
            return artifacts.write_set(self.data_dir, job_id, media_type, renditions, metadata)
        except OSError as err:
            raise StoreUnavailableError(f"cannot write artifacts: {type(err).__name__}: {err}") from err

    def load_manifest(self, job_id: str) -> dict[str, Any] | None:
        """See :func:`worker.store.artifacts.load_manifest`."""
        return artifacts.load_manifest(self.data_dir, job_id)

    def download(self, job_id: str, entry: dict[str, Any]) -> Download:
        """The rendition's file; the API streams it."""
        return Download(entry["contentType"], path=artifacts.job_dir(self.data_dir, job_id) / entry["path"])

    def sweep(self, cutoff: float) -> SweepReport:
        """Delete sets whose manifest is older than ``cutoff``, and stale temporary directories.

        A set is first renamed to a temporary name (one atomic step, so readers
        see it vanish whole), then removed.
        """
        report = SweepReport()
        if not self.data_dir.is_dir():
            return report
        for entry in sorted(self.data_dir.iterdir()):
            if not entry.is_dir() or entry.is_symlink():
                continue
            if entry.name.startswith(artifacts.TMP_PREFIX):
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
                    report.deleted_strays += 1
                continue
            manifest = entry / c.MANIFEST_FILE
            if manifest.is_file() and manifest.stat().st_mtime < cutoff:
                doomed = self.data_dir / f"{artifacts.TMP_PREFIX}swept-{entry.name}-{uuid.uuid4().hex[:8]}"
                os.rename(entry, doomed)
                shutil.rmtree(doomed, ignore_errors=True)
                report.deleted_sets.append(entry.name)
        return report
