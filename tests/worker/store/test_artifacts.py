"""Artifact sets: atomic, manifest last with sha256 per rendition, one set per job ID."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from worker.render.registry import Rendition
from worker.store import artifacts
from worker.store.base import Download
from worker.store.filesystem import FilesystemStore

RENDITIONS = [Rendition("thumb", "webp", 32, 24, b"webp-bytes"), Rendition("card", "jpeg", 20, 10, b"jpeg")]


def test_write_set_and_manifest(tmp_path: Path) -> None:
    manifest = artifacts.write_set(tmp_path, "job-1", "image/png", RENDITIONS, {"k": "v"})
    job_dir = tmp_path / "job-1"
    assert sorted(p.name for p in job_dir.iterdir()) == ["card.jpeg", "manifest.json", "thumb.webp"]
    on_disk = json.loads((job_dir / "manifest.json").read_text())
    assert on_disk == manifest
    assert on_disk["jobId"] == "job-1" and on_disk["metadata"] == {"k": "v"}
    assert on_disk["source"] == {"mediaType": "image/png"}
    assert on_disk["renditions"][0] == {
        "name": "thumb",
        "path": "thumb.webp",
        "format": "webp",
        "contentType": "image/webp",
        "width": 32,
        "height": 24,
        "bytes": 10,
        "sha256": hashlib.sha256(b"webp-bytes").hexdigest(),
    }
    assert (job_dir / "thumb.webp").read_bytes() == b"webp-bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["job-1"]  # no temporary directory left


def test_existing_set_is_kept(tmp_path: Path) -> None:
    first = artifacts.write_set(tmp_path, "job-1", "image/png", RENDITIONS, {})
    second = artifacts.write_set(tmp_path, "job-1", "image/png", [Rendition("other", "png", 1, 1, b"x")], {})
    assert second == first
    assert not (tmp_path / "job-1" / "other.png").exists()


def test_incomplete_directory_is_not_a_set(tmp_path: Path) -> None:
    (tmp_path / "job-2").mkdir()
    (tmp_path / "job-2" / "thumb.webp").write_bytes(b"half")
    assert artifacts.load_manifest(tmp_path, "job-2") is None
    assert FilesystemStore(tmp_path).find("job-2", "thumb") is None


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    bad = [Rendition("thumb", "gif", 1, 1, b"x")]  # not a known output format
    with pytest.raises(KeyError):
        artifacts.write_set(tmp_path, "job-3", "image/png", bad, {})
    assert list(tmp_path.iterdir()) == []


def test_rendition_lookup_and_unsafe_ids(tmp_path: Path) -> None:
    artifacts.write_set(tmp_path, "job-1", "image/png", RENDITIONS, {})
    store = FilesystemStore(tmp_path)
    assert store.find("job-1", "card") == Download("image/jpeg", path=tmp_path / "job-1" / "card.jpeg")
    assert store.find("job-1", "nope") is None
    for bad in ("../x", ".hidden", ""):
        with pytest.raises(ValueError):
            artifacts.job_dir(tmp_path, bad)
