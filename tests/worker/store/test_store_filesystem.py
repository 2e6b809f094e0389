"""The filesystem store, store selection by settings, and the sweep command over DATA_DIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worker import store
from worker.render.registry import Rendition
from worker.settings import Settings
from worker.store.filesystem import FilesystemStore
from worker.store.s3 import S3Store

REPO = Path(__file__).resolve().parents[3]
RENDITIONS = [Rendition("thumb", "webp", 32, 24, b"webp-bytes")]
DAY = 86_400


def age(path: Path, days: float) -> None:
    when = time.time() - days * DAY
    os.utime(path, (when, when))


def test_settings_choose_the_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    chosen = store.from_settings(Settings())
    assert isinstance(chosen, FilesystemStore) and chosen.data_dir == tmp_path
    assert store.from_settings(Settings()) is chosen  # one store per settings value
    monkeypatch.setenv("PREVIEW_ARTIFACT_STORE", "s3")
    monkeypatch.setenv("PREVIEW_S3_BUCKET", "previews")
    monkeypatch.setenv("PREVIEW_S3_PREFIX", "a/b")
    s3 = store.from_settings(Settings())
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix, s3.url_ttl) == ("previews", "a/b/", 900)


def test_filesystem_download_is_the_file(tmp_path: Path) -> None:
    fs = FilesystemStore(tmp_path)
    manifest = fs.write_set("job-1", "image/png", RENDITIONS, {})
    found = fs.find("job-1", "thumb")
    assert found == store.Download("image/webp", path=tmp_path / "job-1" / "thumb.webp")
    assert found.path is not None and found.path.read_bytes() == b"webp-bytes"
    assert fs.find("job-1", "nope") is None and fs.find("job-2", "thumb") is None
    assert fs.load_manifest("job-1") == manifest


def test_unwritable_data_dir_is_a_transient_error(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(store.StoreUnavailableError, match="cannot write artifacts"):
        FilesystemStore(blocker).write_set("job-1", "image/png", RENDITIONS, {})


def test_sweep_deletes_old_sets_and_stale_temporaries(tmp_path: Path) -> None:
    fs = FilesystemStore(tmp_path)
    for job in ("old", "new"):
        fs.write_set(job, "image/png", RENDITIONS, {})
    age(tmp_path / "old" / "manifest.json", 10)
    (tmp_path / ".tmp-crashed-1234").mkdir()
    age(tmp_path / ".tmp-crashed-1234", 10)
    (tmp_path / ".tmp-writing-5678").mkdir()  # a write in progress right now
    (tmp_path / "half").mkdir()  # no manifest: not a set, left alone
    report = fs.sweep(time.time() - 7 * DAY)
    assert report.as_json() == {"deleted": 1, "jobIds": ["old"], "strays": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-writing-5678", "half", "new"]
    assert fs.load_manifest("old") is None and fs.load_manifest("new") is not None


def sweep_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "sweep"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=60,
    )


def test_sweep_command_over_data_dir(tmp_path: Path) -> None:
    fs = FilesystemStore(tmp_path)
    for job in ("a", "b"):
        fs.write_set(job, "image/png", RENDITIONS, {})
    age(tmp_path / "a" / "manifest.json", 8)
    kept = sweep_cli({"DATA_DIR": str(tmp_path), "PREVIEW_RETENTION_DAYS": "0"})
    assert kept.returncode == 0 and json.loads(kept.stdout)["deleted"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    done = sweep_cli({"DATA_DIR": str(tmp_path), "PREVIEW_RETENTION_DAYS": "7"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "store": "filesystem",
        "retentionDays": 7,
        "lifecycleRule": False,
        "deleted": 1,
        "jobIds": ["a"],
        "strays": 0,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"PREVIEW_ARTIFACT_STORE": "s3"},
            "invalid setting s3_bucket='': Value error, PREVIEW_S3_BUCKET must name a bucket",
        ),
        ({"PREVIEW_ARTIFACT_STORE": "gcs"}, "invalid setting PREVIEW_ARTIFACT_STORE='gcs'"),
        (
            {"PREVIEW_S3_ENDPOINT": "http://key:hunter2-secret@minio:9000"},
            "invalid setting PREVIEW_S3_ENDPOINT='http://key:***@minio:9000': Value error, must not carry",
        ),
        ({"PREVIEW_S3_ENDPOINT": "minio:9000"}, "invalid setting PREVIEW_S3_ENDPOINT='minio:9000'"),
        ({"PREVIEW_S3_PREFIX": "/abs"}, "invalid setting PREVIEW_S3_PREFIX='/abs'"),
        (
            {"PREVIEW_S3_URL_TTL_SECONDS": "0"},
            "invalid setting PREVIEW_S3_URL_TTL_SECONDS='0': Input should be greater than or equal to 1",
        ),
        (
            {"PREVIEW_RETENTION_DAYS": "-1"},
            "invalid setting PREVIEW_RETENTION_DAYS='-1': Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_store_settings_stop_with_exit_2(env: dict[str, str], expected: str, tmp_path: Path) -> None:
    done = sweep_cli({"DATA_DIR": str(tmp_path), **env})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(expected), done.stderr
    assert "hunter2" not in done.stderr
