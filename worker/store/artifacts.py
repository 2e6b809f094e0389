"""The artifact set format (renditions plus ``manifest.json``) and its filesystem layout.

:func:`build_manifest` and :func:`rendition_entry` define the manifest every
store writes (``worker.store``). On disk a set lives under ``DATA_DIR/<jobId>/``:
it is written into a temporary sibling directory (renditions first, the
manifest last, everything fsynced) and renamed into place in one step, so a
reader sees either no set or a complete one. A job ID that already has a
complete set keeps it: the same jobId yields one artifact set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mobius_preview_client.contract import validation
from worker import constants as c
from worker.errors import InvalidJobError
from worker.render.registry import FORMAT_MEDIA_TYPES, Rendition

TMP_PREFIX = ".tmp-"


def job_dir(data_dir: Path, job_id: str) -> Path:
    """Directory of one job's artifact set."""
    if not job_id or "/" in job_id or job_id.startswith("."):
        raise ValueError(f"unsafe job id {job_id!r}")
    return data_dir / job_id


def write_set(
    data_dir: Path, job_id: str, media_type: str, renditions: Sequence[Rendition], metadata: dict[str, Any]
) -> dict[str, Any]:
    """Write ``renditions`` and their manifest atomically; return the manifest now in place."""
    final = job_dir(data_dir, job_id)
    existing = load_manifest(data_dir, job_id)
    if existing is not None:
        return existing
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f"{TMP_PREFIX}{job_id}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        entries = [_write_rendition(tmp, r) for r in renditions]
        manifest = build_manifest(job_id, media_type, metadata, entries)
        _write_file(tmp / c.MANIFEST_FILE, json.dumps(manifest, indent=2).encode())
        _fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another attempt won the race (ENOTEMPTY/EEXIST): keep the set already in place.
            winner = load_manifest(data_dir, job_id)
            if winner is None:
                raise
            return winner
        _fsync_dir(data_dir)
        return manifest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build_manifest(
    job_id: str, media_type: str, metadata: dict[str, Any], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    """The manifest of one artifact set; ``entries`` come from :func:`rendition_entry`."""
    return {
        "jobId": job_id,
        "source": {"mediaType": media_type},
        "createdAt": round(time.time(), 3),
        "metadata": metadata,
        "renditions": entries,
    }


def rendition_entry(r: Rendition, path: str) -> dict[str, Any]:
    """One rendition's manifest entry; ``path`` is relative to the set. KeyError for an unknown format."""
    return {
        "name": r.name,
        "path": path,
        "format": r.format,
        "contentType": FORMAT_MEDIA_TYPES[r.format],
        "width": r.width,
        "height": r.height,
        "bytes": len(r.data),
        "sha256": hashlib.sha256(r.data).hexdigest(),
    }


def _write_rendition(directory: Path, r: Rendition) -> dict[str, Any]:
    filename = f"{r.name}.{r.format}"
    entry = rendition_entry(r, filename)
    _write_file(directory / filename, r.data)
    return entry


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_manifest(data_dir: Path, job_id: str) -> dict[str, Any] | None:
    """The job's manifest, or None if it has no complete artifact set."""
    try:
        text = (job_dir(data_dir, job_id) / c.MANIFEST_FILE).read_text()
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    return read_manifest(text)


def read_manifest(text: str | bytes) -> dict[str, Any] | None:
    """A stored manifest through the one JSON gate; None (no usable set) if it does not pass.

    A set written before the gate held every job (metadata with NaN or a lone surrogate) made the
    manifest route answer 500; now it is no set, and the job's next run writes a good one.
    """
    try:
        manifest = validation.parse(text)
    except InvalidJobError:
        return None
    return manifest if isinstance(manifest, dict) else None
