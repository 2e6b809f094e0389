"""``PreviewClient`` against a real Redis, the real consumer, and Node.js BullMQ reading what it wrote."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import worker_media as media
from worker_kit import OUTPUTS, b64, consumer, payload

from worker.client import PreviewClient, QueueFullError
from worker.errors import InvalidJobError
from worker.settings import Settings


def dry_payload(job_id: str | None = None) -> dict[str, Any]:
    return payload({"inline": b64(media.jpeg(64, 48))}, job_id, dryRun=True)


async def keys(client: PreviewClient) -> list[str]:
    found: list[str] = await client.queues.client.keys(f"bull:{client.settings.queue_name}:*")
    return sorted(found)


async def test_an_invalid_payload_lists_every_violation_and_writes_nothing(settings: Settings) -> None:
    async with PreviewClient(settings) as client:
        bad = {"jobId": "bad:id", "source": {"path": "../x"}, "outputs": [{"name": "t", "format": "gif"}]}
        with pytest.raises(InvalidJobError) as info:
            await client.enqueue(bad)
        paths = [v.path for v in info.value.violations]
        assert paths == ["$.jobId", "$.outputs[0]", "$.outputs[0]", "$.outputs[0].format", "$.source.path"]
        assert await keys(client) == []


async def test_the_same_job_id_twice_is_one_job(settings: Settings) -> None:
    async with PreviewClient(settings) as client:
        first = await client.enqueue(dry_payload("upload-42"))
        second = await client.enqueue(dry_payload("upload-42"))
        assert (first.job_id, first.created, first.state) == ("upload-42", True, "waiting")
        assert (second.job_id, second.created, second.state) == ("upload-42", False, "waiting")
        counts = await client.queues.counts()
        assert counts["waiting"] == 1


async def test_attempts_and_backoff_are_the_workers(settings: Settings) -> None:
    async with PreviewClient(settings) as client:
        job = await client.enqueue(dry_payload())
        found = await client.queues.get(job.job_id)
        assert found is not None
        default = Settings.model_fields["job_attempts"].default
        assert found.opts["attempts"] == settings.job_attempts == default
        assert found.opts["backoff"] == {"type": "exponential", "delay": settings.backoff_ms}


async def test_a_full_queue_is_refused_as_the_api_refuses_it(settings: Settings) -> None:
    async with PreviewClient(settings.model_copy(update={"queue_max": 2})) as client:
        await client.enqueue(dry_payload("a"))
        await client.enqueue(dry_payload("b"))
        with pytest.raises(
            QueueFullError, match=r"queue full: 2 jobs not finished \(waiting, delayed or active; max 2\)"
        ):
            await client.enqueue(dry_payload("c"))
        assert (await client.enqueue(dry_payload("a"))).created is False  # a repeat is never refused
        assert (await client.queues.counts())["waiting"] == 2


async def test_jobs_waiting_out_a_retry_backoff_count_against_the_cap(settings: Settings) -> None:
    """Delayed jobs hold their data in Redis as waiting ones do: counting only waiting ones let
    956 delayed jobs pile up under a cap of 50, outside the Redis budget."""
    async with PreviewClient(settings.model_copy(update={"queue_max": 2})) as client:
        await client.queues.main.add(
            "preview", dry_payload("retrying"), {"jobId": "retrying", "delay": 600_000}
        )
        await client.enqueue(dry_payload("a"))
        assert (await client.queues.counts())["delayed"] == 1
        with pytest.raises(QueueFullError) as full:
            await client.enqueue(dry_payload("b"))
        assert (full.value.unfinished, full.value.limit) == (2, 2)


async def test_wait_returns_the_result_the_worker_wrote(settings: Settings) -> None:
    async with PreviewClient(settings) as client, consumer(settings):
        job = await client.enqueue(payload({"inline": b64(media.jpeg(640, 480))}, "render-1"))
        done = await client.wait(job.job_id, timeout=30)
        assert done["state"] == "completed" and done["attemptsMade"] >= 1
        assert done["result"] == {"outcome": "completed", "renditions": len(OUTPUTS)}
        dry = await client.wait((await client.enqueue(dry_payload("dry-1"))).job_id, timeout=30)
        assert (dry["state"], dry["result"]) == ("completed", {"outcome": "dryrun", "renditions": 0})


async def test_wait_times_out_and_unknown_jobs_are_none(settings: Settings) -> None:
    async with PreviewClient(settings) as client:
        job = await client.enqueue(dry_payload("nobody-consumes"))
        with pytest.raises(TimeoutError, match=r"'nobody-consumes' is still waiting after 0\.3s"):
            await client.wait(job.job_id, timeout=0.3)
        assert await client.status("no-such-job") is None
        with pytest.raises(KeyError):
            await client.wait("no-such-job", timeout=1)


async def test_node_bullmq_reads_what_the_client_wrote(settings: Settings, node_producer: Path) -> None:
    body = dry_payload("for-node")
    async with PreviewClient(settings) as client:
        await client.enqueue(body)
    proc = await asyncio.create_subprocess_exec(
        "node", str(node_producer.with_name("inspect.mjs")), settings.redis_url, settings.queue_name,
        "for-node", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out)
    assert (seen["name"], seen["data"], seen["state"]) == ("preview", body, "waiting")
    assert seen["opts"]["attempts"] == settings.job_attempts
    assert seen["opts"]["backoff"] == {"type": "exponential", "delay": settings.backoff_ms}


def test_connect_reads_the_workers_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREVIEW_QUEUE_NAME", "from-env")
    monkeypatch.setenv("PREVIEW_JOB_ATTEMPTS", "7")
    client = PreviewClient.connect("redis://127.0.0.1:1", queue_max=9)
    assert (client.settings.queue_name, client.settings.job_attempts, client.settings.queue_max) == (
        "from-env", 7, 9,
    )  # fmt: skip
    asyncio.run(client.close())
