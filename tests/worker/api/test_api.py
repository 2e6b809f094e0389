"""The job API against a real redis-server (and a dead port for the 503s)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from api_kit import JOB, JSON_TYPE, api
from prometheus_client.parser import text_string_to_metric_families
from store_kit import MinioServer, minio, s3_settings  # noqa: F401  (minio is a fixture)
from worker_kit import (
    AUTH,
    consumer,
    decode_image,
    eventually,
    free_port,
    queues,
    wait_state,
)

from mobius_preview_client.contract import jobid
from worker import constants as c
from worker.settings import Settings


async def test_enqueue_201_then_200_for_the_same_job_id(settings: Settings) -> None:
    async with api(settings) as client:
        first = await client.post("/api/preview/job", json={**JOB, "jobId": "api-1"})
        assert (first.status_code, first.json()) == (201, {"jobId": "api-1", "created": True})
        again = await client.post("/api/preview/job", json={**JOB, "jobId": "api-1"})
        assert (again.status_code, again.json()) == (
            200,
            {"jobId": "api-1", "created": False, "state": "waiting"},
        )
        auto = await client.post("/api/preview/job", json=JOB)
        assert auto.status_code == 201 and auto.json()["jobId"].isdigit()
        status = (await client.get("/api/preview/job/api-1/status")).json()
        assert {
            k: status[k] for k in ("jobId", "state", "attemptsMade", "attempts", "progress", "failedReason")
        } == {
            "jobId": "api-1",
            "state": "waiting",
            "attemptsMade": 0,
            "attempts": 3,
            "progress": 0,
            "failedReason": None,
        }
        metrics = (await client.get("/api/preview/queue/metrics")).json()
        assert metrics == {
            "queue": settings.queue_name,
            "dlqName": settings.queue_name + "-dlq",
            "waiting": 2,
            "active": 0,
            "completed": 0,
            "failed": 0,
            "delayed": 0,
            "dlq": 0,
        }


async def test_400_lists_every_violation_with_its_path(settings: Settings) -> None:
    async with api(settings) as client:
        bad = {
            "jobId": "x y",
            "source": {"inline": "AAAA", "path": "a"},
            "outputs": [{"name": "t", "format": "tiff", "width": 0, "height": 10}],
            "extra": 1,
        }
        resp = await client.post("/api/preview/job", json=bad)
        assert resp.status_code == 400
        assert resp.json() == {
            "error": "invalid job",
            "violations": [
                {"path": "$", "message": "unknown properties not allowed: extra"},
                {"path": "$.jobId", "message": jobid.problem("x y")},
                {"path": "$.outputs[0].format", "message": "'tiff' is not one of ['webp', 'png', 'jpeg']"},
                {"path": "$.outputs[0].width", "message": "0 is less than the minimum of 1"},
                {"path": "$.source", "message": "must have exactly one of inline, path, url"},
            ],
        }
        junk = await client.post("/api/preview/job", content=b"{not json", headers=JSON_TYPE)
        assert junk.status_code == 400 and junk.json()["error"] == "body is not valid JSON"
        assert junk.json()["violations"][0]["path"] == "$"


async def test_429_when_the_queue_is_full(settings: Settings) -> None:
    small = settings.model_copy(update={"queue_max": 2})
    async with api(small) as client:
        for i in range(2):
            assert (
                await client.post("/api/preview/job", json={**JOB, "jobId": f"full-{i}"})
            ).status_code == 201
        resp = await client.post("/api/preview/job", json={**JOB, "jobId": "full-2"})
        assert resp.status_code == 429
        assert (
            resp.json() == {"error": "queue full: 2 jobs not finished (waiting, delayed or active; max 2)"}
            and resp.headers["retry-after"] == "5"
        )
        # A repeated jobId is not new work: still answered.
        assert (await client.post("/api/preview/job", json={**JOB, "jobId": "full-0"})).status_code == 200


async def test_404s(settings: Settings) -> None:
    async with api(settings) as client:
        for path in (
            "/api/preview/job/nope/status",
            "/api/preview/job/nope/artifact",
            "/api/preview/job/nope/artifact/thumb",
            "/api/preview/job/..%2Fetc/artifact/passwd",
        ):
            resp = await client.get(path)
            assert resp.status_code == 404, path
        assert (await client.get("/api/preview/job/nope/status")).json() == {"error": "unknown job 'nope'"}


async def test_artifact_manifest_and_rendition_bytes(settings: Settings) -> None:
    async with api(settings) as client, queues(settings) as q, consumer(settings):
        assert (await client.post("/api/preview/job", json={**JOB, "jobId": "art-1"})).status_code == 201
        await wait_state(q, "art-1", "completed")
        status = (await client.get("/api/preview/job/art-1/status")).json()
        assert (status["state"], status["attemptsMade"]) == ("completed", 1)
        manifest = (await client.get("/api/preview/job/art-1/artifact")).json()
        urls = {r["name"]: r["url"] for r in manifest["renditions"]}
        assert urls == {
            "thumb": "http://api/api/preview/job/art-1/artifact/thumb",
            "card": "http://api/api/preview/job/art-1/artifact/card",
        }
        thumb = await client.get(urls["thumb"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
        image = decode_image(thumb.content)
        assert (image.format, image.size) == ("WEBP", (320, 240))
        card = await client.get(urls["card"])
        assert card.headers["content-type"] == "image/jpeg" and decode_image(card.content).size == (200, 100)
        missing = await client.get("/api/preview/job/art-1/artifact/poster")
        assert missing.status_code == 404


async def test_health_when_redis_is_up(settings: Settings) -> None:
    async with api(settings) as client:
        await client.post("/api/preview/job", json={**JOB, "jobId": "h-1"})

        async def counted() -> httpx.Response | None:  # the counts of a check after the POST
            resp = await client.get("/api/preview/worker/health")
            return resp if resp.json()["queue"].get("waiting") == 1 else None

        resp = await eventually(counted, timeout=5)
    body: dict[str, Any] = resp.json()
    assert resp.status_code == 200
    assert set(body) == {"status", "timestamp", "redis", "queue"}
    age = body["redis"].pop("ageSeconds")
    assert 0 <= age <= settings.api_health_max_age_seconds
    assert body["status"] == "healthy" and body["redis"] == {"status": "connected", "url": settings.redis_url}
    assert body["queue"] == {
        "name": settings.queue_name,
        "waiting": 1,
        "active": 0,
        "completed": 0,
        "failed": 0,
        "delayed": 0,
        "total": 1,
    }


async def test_503_and_health_503_when_redis_is_down(settings: Settings) -> None:
    port = free_port()  # nothing listens here
    down = settings.model_copy(update={"redis_url": f"redis://:sekret-pw@127.0.0.1:{port}/0"})
    async with api(down) as client:
        resp = await client.post("/api/preview/job", json={**JOB, "jobId": "down-1"})
        assert (resp.status_code, resp.json()) == (503, {"error": "redis unreachable"})
        for path in ("/api/preview/job/down-1/status", "/api/preview/queue/metrics"):
            assert (await client.get(path)).status_code == 503
        health = await client.get("/api/preview/worker/health")
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unhealthy"
    assert body["redis"] == {  # never answered: no ageSeconds
        "status": "disconnected",
        "url": f"redis://:***@127.0.0.1:{port}/0",
        "error": "ConnectionError",
    }
    assert "sekret" not in health.text


async def test_api_process_serves_over_uvicorn(worker_env: dict[str, str], settings: Settings) -> None:
    import asyncio
    import os
    import sys
    from pathlib import Path

    port = free_port()
    env = {**os.environ, **worker_env, "PREVIEW_API_HOST": "127.0.0.1", "PREVIEW_API_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        "api",
        env=env,
        cwd=Path(__file__).resolve().parents[3],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as client:

            async def health() -> httpx.Response | None:
                assert proc.returncode is None, "the API exited before it listened"
                try:
                    return await client.get("/api/preview/worker/health")
                except httpx.ConnectError:
                    return None

            resp = await eventually(health, timeout=60)  # a cold interpreter on a loaded 2-core machine
            assert (
                resp is not None
                and resp.status_code == 200
                and resp.json()["queue"]["name"] == settings.queue_name
            )
            created = await client.post("/api/preview/job", json={**JOB, "jobId": "uv-1"})
            assert created.status_code == 201
            scraped = await client.get(c.METRICS_PATH)
            assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
            served = samples(scraped.text)
            assert served[(c.METRIC_API_REQUESTS, _labels("/api/preview/job", "POST", 201))] == 1
    finally:
        proc.terminate()
        out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert '"msg":"job enqueued","jobId":"uv-1"' in out.decode()


async def test_s3_store_manifest_has_presigned_urls_and_rendition_redirects(
    minio: MinioServer,  # noqa: F811
    worker_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = minio.new_bucket()
    settings = s3_settings(monkeypatch, worker_env, minio, bucket, PREVIEW_S3_URL_TTL_SECONDS="120")
    async with api(settings) as client, queues(settings) as q, consumer(settings):
        assert (await client.post("/api/preview/job", json={**JOB, "jobId": "s3-art"})).status_code == 201
        await wait_state(q, "s3-art", "completed")
        manifest = (await client.get("/api/preview/job/s3-art/artifact")).json()
        assert manifest["urlExpiresInSeconds"] == 120
        set_id = manifest["renditions"][0]["path"].split("/")[0]
        assert minio.keys(bucket) == sorted(
            ["s3-art/manifest.json", f"s3-art/{set_id}/thumb.webp", f"s3-art/{set_id}/card.jpeg"]
        )
        for entry in manifest["renditions"]:
            assert entry["url"].startswith(f"{minio.endpoint}/{bucket}/s3-art/{set_id}/")
            assert "X-Amz-Expires=120" in entry["url"] and minio.secret_key not in entry["url"]
            got = httpx.get(entry["url"])  # plain HTTP, no credentials
            assert got.status_code == 200 and got.headers["content-type"] == entry["contentType"]
            assert decode_image(got.content).size == (entry["width"], entry["height"])
        redirect = await client.get("/api/preview/job/s3-art/artifact/thumb")
        assert redirect.status_code == 307
        assert (
            httpx.get(redirect.headers["location"]).content
            == httpx.get(manifest["renditions"][0]["url"]).content
        )
        assert (await client.get("/api/preview/job/s3-art/artifact/poster")).status_code == 404
        assert (await client.get("/api/preview/job/nope/artifact")).status_code == 404


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


#: The labels of the API's own series: its track and release.
OWN = frozenset({("track", "stable"), ("release", c.RELEASE_LOCAL)})


def _labels(route: str, method: str, status: int, track: str = "stable") -> frozenset[tuple[str, str]]:
    own = {"track": track, "release": c.RELEASE_LOCAL}
    return frozenset({**own, "route": route, "method": method, "status": str(status)}.items())


async def test_request_counter_by_route_template(settings: Settings) -> None:
    async with api(settings) as client:
        assert (await client.post("/api/preview/job", json={**JOB, "jobId": "m-1"})).status_code == 201
        assert (await client.post("/api/preview/job", json={"outputs": []})).status_code == 400
        assert (await client.get("/api/preview/job/secret-id-7/status")).status_code == 404
        assert (await client.get("/wp-admin/secret-id-7")).status_code == 404
        assert (await client.delete("/api/preview/job")).status_code == 405
        found = samples((await client.get(c.METRICS_PATH)).text)
    counts = {labels: v for (name, labels), v in found.items() if name == c.METRIC_API_REQUESTS}
    assert counts == {
        _labels("/api/preview/job", "POST", 201): 1,
        _labels("/api/preview/job", "POST", 400): 1,
        _labels("/api/preview/job/{job_id}/status", "GET", 404): 1,
        _labels(c.ROUTE_UNMATCHED, "GET", 404): 1,
        _labels("/api/preview/job", "other", 405): 1,
    }
    # Raw paths and job IDs never become label values.
    assert not any("secret-id-7" in value for labels in counts for _, value in labels)


async def test_enqueue_histogram_counts_one_enqueue(settings: Settings) -> None:
    async with api(settings) as client:
        before = samples((await client.get(c.METRICS_PATH)).text)
        key = (c.METRIC_API_ENQUEUE_DURATION + "_count", OWN)
        assert before[key] == 0
        assert (await client.post("/api/preview/job", json={**JOB, "jobId": "h-1"})).status_code == 201
        after = samples((await client.get(c.METRICS_PATH)).text)
    assert after[key] == 1
    assert 0 < after[(c.METRIC_API_ENQUEUE_DURATION + "_sum", OWN)] < 5
    inf = OWN | {("le", "+Inf")}
    assert after[(c.METRIC_API_ENQUEUE_DURATION + "_bucket", inf)] == 1
    # The scrapes themselves are counted, under their own route.
    assert after[(c.METRIC_API_REQUESTS, _labels(c.METRICS_PATH, "GET", 200))] == 1


async def test_redis_down_is_counted_as_503(settings: Settings) -> None:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with api(down) as client:
        assert (await client.post("/api/preview/job", json=JOB)).status_code == 503
        found = samples((await client.get(c.METRICS_PATH)).text)
    assert found[(c.METRIC_API_REQUESTS, _labels("/api/preview/job", "POST", 503))] == 1
    assert found[(c.METRIC_API_ENQUEUE_DURATION + "_count", OWN)] == 1
