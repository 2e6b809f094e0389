"""Artifact stores behind one interface, chosen by ``PREVIEW_ARTIFACT_STORE``: ``filesystem`` or ``s3``."""

from __future__ import annotations

import functools

from worker import constants as c
from worker.settings import Settings
from worker.store.base import ArtifactStore, Download, StoreUnavailableError, SweepReport
from worker.store.filesystem import FilesystemStore

__all__ = ["ArtifactStore", "Download", "StoreUnavailableError", "SweepReport", "from_settings"]


@functools.lru_cache(maxsize=8)
def from_settings(settings: Settings) -> ArtifactStore:
    """The store ``settings`` select; one per settings value (an S3 client is costly to build)."""
    if settings.artifact_store == c.STORE_S3:
        from worker.store.s3 import S3Store  # boto3 is only imported where it is used

        return S3Store(settings)
    return FilesystemStore(settings.data_dir)
