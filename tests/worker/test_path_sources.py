"""``PREVIEW_PATH_SOURCES=off`` (the stacks' default): jobs naming a file are refused, by the API and
by the worker for jobs written to Redis directly; ``on`` (the local default) keeps them."""

from __future__ import annotations

from pathlib import Path

from api_kit import api
from worker_kit import consumer, payload, queues, wait_state

from worker.settings import Settings

PATH_JOB = payload({"path": "uploads/photo.jpg"}, "by-path")
REFUSED = {"path": "$.source.path", "message": "path sources are turned off here (PREVIEW_PATH_SOURCES=off)"}


async def test_the_api_refuses_a_path_source_when_they_are_off(settings: Settings) -> None:
    off = settings.model_copy(update={"path_sources": "off"})
    async with api(off) as client, queues(off) as q:
        reply = await client.post("/api/preview/job", json=PATH_JOB)
        assert reply.status_code == 400
        assert reply.json()["violations"] == [REFUSED]
        assert await q.get("by-path") is None
        inline = await client.post("/api/preview/job", json=payload({"inline": "aGVsbG8="}, "inline-ok"))
        assert inline.status_code == 201


async def test_the_worker_dead_letters_a_path_job_written_to_redis_directly(settings: Settings) -> None:
    off = settings.model_copy(update={"path_sources": "off"})
    async with queues(off) as q, consumer(off):
        await q.main.add("preview", PATH_JOB, {"jobId": "by-path", "attempts": 3})
        await wait_state(q, "by-path", "failed")
        job = await q.get("by-path")
        assert job is not None and job.attemptsMade == 1  # permanent: not retried
        assert "path sources are turned off here" in str(job.failedReason)
        assert [e.data["jobId"] for e in await q.dlq_entries()] == ["by-path"]


async def test_path_sources_stay_on_by_default(settings: Settings, input_root: Path) -> None:
    assert settings.path_sources == "on" and (input_root / "uploads" / "photo.jpg").is_file()
    async with api(settings) as client, queues(settings) as q, consumer(settings):
        assert (await client.post("/api/preview/job", json=PATH_JOB)).status_code == 201
        await wait_state(q, "by-path", "completed")
