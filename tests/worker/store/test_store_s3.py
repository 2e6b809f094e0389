"""The s3 artifact store against a real MinIO on loopback: upload, ordering, presigned URLs, retention."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from store_kit import REPO, MinioServer, minio, s3_settings  # noqa: F401  (minio is a fixture)
from worker_kit import free_port

from worker import constants as c
from worker.render.registry import Rendition
from worker.settings import Settings
from worker.store import StoreUnavailableError
from worker.store.s3 import S3Store

RENDITIONS = [Rendition("thumb", "webp", 32, 24, b"webp-bytes"), Rendition("card", "jpeg", 20, 10, b"jpeg!")]


@pytest.fixture
def bucket(minio: MinioServer) -> str:  # noqa: F811
    return minio.new_bucket()


@pytest.fixture
def make_store(
    minio: MinioServer,  # noqa: F811
    bucket: str,
    worker_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    def make(**extra: str) -> S3Store:
        return S3Store(s3_settings(monkeypatch, worker_env, minio, bucket, **extra))

    return make


def test_upload_writes_renditions_then_manifest(make_store: Any, minio: MinioServer, bucket: str) -> None:  # noqa: F811
    store = make_store(PREVIEW_S3_PREFIX="previews")
    manifest = store.write_set("job-1", "image/png", RENDITIONS, {"k": "v"})
    set_id = manifest["renditions"][0]["path"].split("/")[0]
    assert len(set_id) == 12
    assert [(e["name"], e["path"], e["contentType"], e["bytes"]) for e in manifest["renditions"]] == [
        ("thumb", f"{set_id}/thumb.webp", "image/webp", 10),
        ("card", f"{set_id}/card.jpeg", "image/jpeg", 5),
    ]
    assert manifest["renditions"][0]["sha256"] == hashlib.sha256(b"webp-bytes").hexdigest()
    files = ["manifest.json", f"{set_id}/thumb.webp", f"{set_id}/card.jpeg"]
    assert minio.keys(bucket) == sorted(f"previews/job-1/{f}" for f in files)
    admin = minio.client()
    thumb = admin.get_object(Bucket=bucket, Key=f"previews/job-1/{set_id}/thumb.webp")
    assert (thumb["Body"].read(), thumb["ContentType"]) == (b"webp-bytes", "image/webp")
    stored = json.loads(admin.get_object(Bucket=bucket, Key="previews/job-1/manifest.json")["Body"].read())
    assert stored == manifest == store.load_manifest("job-1")
    assert store.load_manifest("job-2") is None


def test_manifest_is_uploaded_last_and_invisible_until_then(make_store: Any) -> None:
    store, reader = make_store(), make_store()
    seen: list[tuple[str, dict[str, Any] | None]] = []

    def observe(params: dict[str, Any], **_: Any) -> None:
        # Runs before each real PutObject: what would a reader see at this moment?
        seen.append((params["Key"], reader.load_manifest("job-1")))

    store.client.meta.events.register("before-parameter-build.s3.PutObject", observe)
    store.write_set("job-1", "image/png", RENDITIONS, {})
    assert [key.rsplit("/", 1)[-1] for key, _ in seen] == ["thumb.webp", "card.jpeg", c.MANIFEST_FILE]
    assert [m for _, m in seen] == [None, None, None]
    assert reader.load_manifest("job-1") is not None


def test_first_complete_set_wins_and_the_loser_cleans_up(
    make_store: Any,
    minio: MinioServer,  # noqa: F811
    bucket: str,
) -> None:
    stores = [make_store(), make_store()]
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def meet_before_manifest(params: dict[str, Any], **_: Any) -> None:
        # Both attempts have passed the "already done?" check and uploaded their renditions.
        if params["Key"].endswith(c.MANIFEST_FILE):
            barrier.wait(10)

    def attempt(store: S3Store) -> None:
        store.client.meta.events.register("before-parameter-build.s3.PutObject", meet_before_manifest)
        results.append(store.write_set("race", "image/png", RENDITIONS, {}))

    threads = [threading.Thread(target=attempt, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 2 and results[0] == results[1]
    kept = results[0]["renditions"][0]["path"].split("/")[0]
    assert minio.keys(bucket) == sorted(
        ["race/manifest.json", f"race/{kept}/thumb.webp", f"race/{kept}/card.jpeg"]
    )


def test_existing_set_is_kept(make_store: Any) -> None:
    store = make_store()
    first = store.write_set("job-1", "image/png", RENDITIONS, {})
    second = store.write_set("job-1", "image/png", [Rendition("other", "png", 1, 1, b"x")], {})
    assert second == first


def test_presigned_download_over_plain_http(make_store: Any) -> None:
    store = make_store(PREVIEW_S3_URL_TTL_SECONDS="300")
    manifest = store.write_set("job-1", "image/png", RENDITIONS, {})
    url = store.download("job-1", manifest["renditions"][0]).url
    assert url is not None and url.startswith(f"{store.client.meta.endpoint_url}/")
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["300"]
    got = httpx.get(url)  # no credentials: the URL alone grants access
    assert (got.status_code, got.content, got.headers["content-type"]) == (200, b"webp-bytes", "image/webp")
    tampered = url.replace("thumb.webp", "card.jpeg")
    assert httpx.get(tampered).status_code == 403
    assert httpx.get(url.split("?")[0]).status_code == 403  # the object itself is private


def test_presigned_url_expires(make_store: Any) -> None:
    store = make_store(PREVIEW_S3_URL_TTL_SECONDS="2")
    manifest = store.write_set("job-1", "image/png", RENDITIONS, {})
    url = store.download("job-1", manifest["renditions"][1]).url
    assert url is not None
    assert httpx.get(url).content == b"jpeg!"
    time.sleep(3.5)
    expired = httpx.get(url)
    assert expired.status_code == 403 and "expired" in expired.text.lower()


def test_urls_are_signed_for_the_public_endpoint(make_store: Any, minio: MinioServer) -> None:  # noqa: F811
    public = f"http://localhost:{minio.port}"
    store = make_store(PREVIEW_S3_PUBLIC_ENDPOINT=public)
    manifest = store.write_set("job-1", "image/png", RENDITIONS, {})
    url = store.download("job-1", manifest["renditions"][0]).url
    assert url is not None and url.startswith(f"{public}/")
    assert httpx.get(url).content == b"webp-bytes"


def test_sweep_deletes_old_sets_manifest_first_and_strays(
    make_store: Any,
    minio: MinioServer,  # noqa: F811
    bucket: str,
) -> None:
    store = make_store(PREVIEW_S3_PREFIX="p/")
    store.write_set("job-1", "image/png", RENDITIONS, {})
    store.write_set("job-2", "image/png", RENDITIONS[:1], {})
    minio.client().put_object(Bucket=bucket, Key="p/job-3/abc/thumb.webp", Body=b"stray")  # never completed
    minio.client().put_object(Bucket=bucket, Key="elsewhere/keep.txt", Body=b"not ours")
    assert store.sweep(time.time() - 3600).as_json() == {"deleted": 0, "jobIds": [], "strays": 0}
    assert len(minio.keys(bucket)) == 7
    deleted: list[list[str]] = []
    store.client.meta.events.register(
        "before-parameter-build.s3.DeleteObjects",
        lambda params, **_: deleted.append([o["Key"] for o in params["Delete"]["Objects"]]),
    )
    report = store.sweep(time.time() + 60)
    assert report.as_json() == {"deleted": 2, "jobIds": ["job-1", "job-2"], "strays": 1}
    assert deleted[0] == ["p/job-1/manifest.json"] and deleted[2] == ["p/job-2/manifest.json"]
    assert minio.keys(bucket) == ["elsewhere/keep.txt"]


def test_lifecycle_rule_is_set_and_removed_keeping_other_rules(
    make_store: Any,
    minio: MinioServer,  # noqa: F811
    bucket: str,
) -> None:
    admin = minio.client()
    other = {
        "ID": "someone-elses",
        "Status": "Enabled",
        "Filter": {"Prefix": "logs/"},
        "Expiration": {"Days": 90},
    }
    admin.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [other]})
    store = make_store(PREVIEW_S3_PREFIX="previews/")
    assert store.apply_retention(7) is True
    rules = {r["ID"]: r for r in admin.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert sorted(rules) == [c.S3_LIFECYCLE_RULE_ID, "someone-elses"]
    ours = rules[c.S3_LIFECYCLE_RULE_ID]
    assert (ours["Status"], ours["Expiration"]["Days"]) == ("Enabled", 7)
    assert ours["Filter"]["Prefix"] == "previews/"
    assert store.apply_retention(3) is True  # replaces, never duplicates
    rules = {r["ID"]: r for r in admin.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules[c.S3_LIFECYCLE_RULE_ID]["Expiration"]["Days"] == 3 and len(rules) == 2
    assert store.apply_retention(0) is True
    rules = {r["ID"]: r for r in admin.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert list(rules) == ["someone-elses"]


def test_sweep_command_sets_the_rule_keeps_fresh_sets_and_never_prints_secrets(
    make_store: Any,
    minio: MinioServer,  # noqa: F811
    bucket: str,
    worker_env: dict[str, str],
) -> None:
    make_store().write_set("fresh", "image/png", RENDITIONS, {})
    env = {**worker_env, **minio.env(bucket, PREVIEW_RETENTION_DAYS="30"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "worker", "sweep"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "store": "s3",
        "retentionDays": 30,
        "lifecycleRule": True,
        "deleted": 0,
        "jobIds": [],
        "strays": 0,
    }
    rules = minio.client().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [(r["ID"], r["Expiration"]["Days"]) for r in rules] == [(c.S3_LIFECYCLE_RULE_ID, 30)]
    assert len(minio.keys(bucket)) == 3
    assert minio.secret_key not in done.stdout + done.stderr


def test_unreachable_store_is_a_transient_error(
    worker_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    minio: MinioServer,  # noqa: F811
) -> None:
    dead_port = free_port()  # nothing listens here
    env = {**minio.env("some-bucket"), "PREVIEW_S3_ENDPOINT": f"http://127.0.0.1:{dead_port}"}
    for key, value in {**worker_env, **env}.items():
        monkeypatch.setenv(key, value)
    store = S3Store(Settings())
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="EndpointConnectionError"):
        store.load_manifest("job-1")
    with pytest.raises(StoreUnavailableError):
        store.write_set("job-1", "image/png", RENDITIONS, {})
    assert time.monotonic() - started < 10
