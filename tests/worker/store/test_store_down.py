"""When the S3 store goes down: the job is retried (transient), nothing half-written is ever visible."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest
import worker_media as media
from store_kit import MinioServer, own_minio, s3_settings  # noqa: F401  (own_minio is a fixture)
from worker_kit import AUTH, OUTPUTS, eventually, queues, served, wait_state

from worker.api.app import create_app
from worker.render.registry import Rendition
from worker.store import StoreUnavailableError
from worker.store.s3 import S3Store

RENDITIONS = [Rendition("thumb", "webp", 32, 24, b"webp-bytes"), Rendition("card", "jpeg", 20, 10, b"jpeg!")]


def test_store_killed_mid_upload_leaves_no_visible_set(
    own_minio: MinioServer,  # noqa: F811
    worker_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = own_minio.new_bucket()
    store = S3Store(s3_settings(monkeypatch, worker_env, own_minio, bucket))
    killed: list[str] = []

    def kill_after_first_rendition(model: Any, **_: Any) -> None:
        if not killed:  # the store dies between the first and second rendition
            own_minio.kill()
            killed.append(model.name)

    store.client.meta.events.register("after-call.s3.PutObject", kill_after_first_rendition)
    with pytest.raises(StoreUnavailableError, match="upload"):
        store.write_set("job-1", "image/png", RENDITIONS, {})
    assert killed == ["PutObject"]
    own_minio.start()
    assert store.load_manifest("job-1") is None  # a reader sees no set, not half of one
    [stray] = own_minio.keys(bucket)
    assert stray.startswith("job-1/") and stray.endswith("/thumb.webp")
    assert store.sweep(time.time() - 3600).deleted_strays == 0  # too young to be swept
    assert store.sweep(time.time() + 60).as_json() == {"deleted": 0, "jobIds": [], "strays": 1}
    manifest = store.write_set("job-1", "image/png", RENDITIONS, {})  # the retry completes the set
    assert [e["name"] for e in manifest["renditions"]] == ["thumb", "card"]
    assert len(own_minio.keys(bucket)) == 3


async def test_job_is_retried_while_the_store_is_down_and_completes_after(
    own_minio: MinioServer,  # noqa: F811
    worker_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    spawn_worker: Any,
) -> None:
    bucket = own_minio.new_bucket()
    settings = s3_settings(
        monkeypatch, worker_env, own_minio, bucket, PREVIEW_JOB_ATTEMPTS="10", PREVIEW_BACKOFF_MS="200"
    )
    own_minio.stop()
    worker = spawn_worker(**own_minio.env(bucket))
    job = {
        "jobId": "down-1",
        "source": {"inline": base64.b64encode(media.jpeg(400, 300)).decode()},
        "outputs": OUTPUTS,
    }
    async with queues(settings) as q, served(create_app(settings), AUTH) as api:
        assert (await api.post("/api/preview/job", json=job)).status_code == 201

        async def retried_twice() -> Any:
            status = (await api.get("/api/preview/job/down-1/status")).json()
            return status if status["attemptsMade"] >= 2 else None

        status = await eventually(retried_twice, timeout=30)
        assert status["state"] in ("delayed", "waiting", "active")
        reason = "artifact store: read manifest of down-1: EndpointConnectionError"
        assert status["failedReason"].startswith(reason)
        down = await api.get("/api/preview/job/down-1/artifact")
        assert down.status_code == 503 and down.json() == {"error": "artifact store unreachable"}
        own_minio.start()
        await wait_state(q, "down-1", "completed", timeout=40)
        manifest = (await api.get("/api/preview/job/down-1/artifact")).json()
        assert [r["name"] for r in manifest["renditions"]] == ["thumb", "card"]
        got = httpx.get(manifest["renditions"][0]["url"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/webp"
    events = [e for e in worker.events() if e.get("jobId") == "down-1"]
    assert [e["outcome"] for e in events if "outcome" in e][-1] == "completed"
    assert any(
        e.get("outcome") == "retried" and "StoreUnavailableError" in e.get("reason", "") for e in events
    )
    assert own_minio.secret_key not in worker.logfile.read_text()
