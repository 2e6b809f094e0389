"""The producer client (``mobius_preview_client``) against a real Redis, the real consumer, and Node.js
BullMQ reading what it wrote; configured from the worker's settings as the job API configures it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import worker_media as media
from worker_kit import OUTPUTS, b64, consumer, payload

from mobius_preview_client import AsyncPreviewClient, ClientConfig, ConfigError, PreviewClient
from worker.errors import InvalidJobError, QueueFullError
from worker.queue.queues import Queues
from worker.settings import Settings


def PreviewClientFor(settings: Settings) -> AsyncPreviewClient:
    return AsyncPreviewClient.from_config(settings.client_config())


def dry_payload(job_id: str | None = None) -> dict[str, Any]:
    return payload({"inline": b64(media.jpeg(64, 48))}, job_id, dryRun=True)


async def keys(client: AsyncPreviewClient) -> list[str]:
    found: list[str] = await client.redis.keys(f"bull:{client.config.queue_name}:*")
    return sorted(found)


async def test_an_invalid_payload_lists_every_violation_and_writes_nothing(settings: Settings) -> None:
    async with PreviewClientFor(settings) as client:
        bad = {"jobId": "bad:id", "source": {"path": "../x"}, "outputs": [{"name": "t", "format": "gif"}]}
        with pytest.raises(InvalidJobError) as info:
            await client.enqueue(bad)
        paths = [v.path for v in info.value.violations]
        assert paths == ["$.jobId", "$.outputs[0]", "$.outputs[0]", "$.outputs[0].format", "$.source.path"]
        assert await keys(client) == []


async def test_the_same_job_id_twice_is_one_job(settings: Settings) -> None:
    async with PreviewClientFor(settings) as client:
        first = await client.enqueue(dry_payload("upload-42"))
        second = await client.enqueue(dry_payload("upload-42"))
        assert (first.job_id, first.created, first.state) == ("upload-42", True, "waiting")
        assert (second.job_id, second.created, second.state) == ("upload-42", False, "waiting")
        counts = await Queues(settings, client.redis).counts()
        assert counts["waiting"] == 1


async def test_attempts_and_backoff_are_the_workers(settings: Settings) -> None:
    async with PreviewClientFor(settings) as client:
        job = await client.enqueue(dry_payload())
        found = await Queues(settings, client.redis).get(job.job_id)
        assert found is not None
        default = Settings.model_fields["job_attempts"].default
        assert found.opts["attempts"] == settings.job_attempts == default
        assert found.opts["backoff"] == {"type": "exponential", "delay": settings.backoff_ms}


async def test_a_full_queue_is_refused_as_the_api_refuses_it(settings: Settings) -> None:
    async with PreviewClientFor(settings.model_copy(update={"queue_max": 2})) as client:
        await client.enqueue(dry_payload("a"))
        await client.enqueue(dry_payload("b"))
        with pytest.raises(
            QueueFullError, match=r"queue full: 2 jobs not finished \(waiting, delayed or active; max 2\)"
        ):
            await client.enqueue(dry_payload("c"))
        assert (await client.enqueue(dry_payload("a"))).created is False  # a repeat is never refused
        assert (await Queues(settings, client.redis).counts())["waiting"] == 2


async def test_jobs_waiting_out_a_retry_backoff_count_against_the_cap(settings: Settings) -> None:
    """Delayed jobs hold their data in Redis as waiting ones do: counting only waiting ones let
    956 delayed jobs pile up under a cap of 50, outside the Redis budget."""
    async with PreviewClientFor(settings.model_copy(update={"queue_max": 2})) as client:
        await client.queue.add("preview", dry_payload("retrying"), {"jobId": "retrying", "delay": 600_000})
        await client.enqueue(dry_payload("a"))
        assert (await Queues(settings, client.redis).counts())["delayed"] == 1
        with pytest.raises(QueueFullError) as full:
            await client.enqueue(dry_payload("b"))
        assert (full.value.unfinished, full.value.limit) == (2, 2)


async def test_wait_returns_the_result_the_worker_wrote(settings: Settings) -> None:
    async with PreviewClientFor(settings) as client, consumer(settings):
        job = await client.enqueue(payload({"inline": b64(media.jpeg(640, 480))}, "render-1"))
        done = await client.wait(job.job_id, timeout=30)
        assert done["state"] == "completed" and done["attemptsMade"] >= 1
        assert done["result"] == {"outcome": "completed", "renditions": len(OUTPUTS)}
        dry = await client.wait((await client.enqueue(dry_payload("dry-1"))).job_id, timeout=30)
        assert (dry["state"], dry["result"]) == ("completed", {"outcome": "dryrun", "renditions": 0})


async def test_wait_times_out_and_unknown_jobs_are_none(settings: Settings) -> None:
    async with PreviewClientFor(settings) as client:
        job = await client.enqueue(dry_payload("nobody-consumes"))
        with pytest.raises(TimeoutError, match=r"'nobody-consumes' is still waiting after 0\.3s"):
            await client.wait(job.job_id, timeout=0.3)
        assert await client.status("no-such-job") is None
        with pytest.raises(KeyError):
            await client.wait("no-such-job", timeout=1)


async def test_node_bullmq_reads_what_the_client_wrote(settings: Settings, node_producer: Path) -> None:
    body = dry_payload("for-node")
    async with PreviewClientFor(settings) as client:
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


def test_from_env_reads_the_workers_variables_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREVIEW_QUEUE_NAME", "from-env")
    monkeypatch.setenv("PREVIEW_JOB_ATTEMPTS", "7")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")
    explicit = ClientConfig("redis://127.0.0.1:1")
    assert (explicit.queue_name, explicit.job_attempts) == ("preview-jobs", 3)  # the env is not read
    env = {"REDIS_URL": "redis://127.0.0.1:1", "PREVIEW_QUEUE_NAME": "from-env", "PREVIEW_JOB_ATTEMPTS": "7"}
    found = ClientConfig.from_env(env, queue_max=9)
    assert (found.queue_name, found.job_attempts, found.queue_max) == ("from-env", 7, 9)
    client = PreviewClient.from_env(queue_max=9)
    assert (client.config.queue_name, client.config.job_attempts) == ("from-env", 7)
    client.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "REDIS_URL is not set"),
        ({"REDIS_URL": "http://user:hunter2@h"}, "REDIS_URL: must be a redis://"),
        ({"REDIS_URL": "redis://:hunter2@h:99999"}, "REDIS_URL: Port out of range"),
        ({"PREVIEW_QUEUE_NAME": "a:b"}, "PREVIEW_QUEUE_NAME: must be 1-64 of"),
        ({"PREVIEW_QUEUE_NAME": "abc\n"}, "PREVIEW_QUEUE_NAME: must be 1-64 of"),
        ({"PREVIEW_QUEUE_MAX": "0"}, "PREVIEW_QUEUE_MAX: must be an integer from 1 to"),
        ({"PREVIEW_JOB_ATTEMPTS": "3.5"}, "PREVIEW_JOB_ATTEMPTS: must be an integer from 1 to 100"),
        ({"PREVIEW_BACKOFF_MS": "9" * 5000}, "PREVIEW_BACKOFF_MS: must be an integer from 0 to"),
        ({"PREVIEW_PATH_SOURCES": "yes"}, "PREVIEW_PATH_SOURCES: must be on or off"),
    ],
)
def test_hostile_env_is_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    base = {"REDIS_URL": "redis://127.0.0.1:1"} if "REDIS_URL" not in env and env else {}
    with pytest.raises(ConfigError, match=message) as info:
        ClientConfig.from_env({**base, **env})
    assert "hunter2" not in str(info.value) and len(str(info.value)) < 200


def test_bad_arguments_are_refused_naming_the_option() -> None:
    with pytest.raises(ConfigError, match=r"^prefix: must be"):
        ClientConfig("redis://h", prefix="a:b")
    with pytest.raises(ConfigError, match=r"^queue_max: must be an integer"):
        ClientConfig("redis://h", queue_max=True)


def test_the_sync_client_enqueues_times_out_and_closes_its_thread(settings: Settings) -> None:
    with PreviewClient.from_config(settings.client_config()) as client:
        job = client.enqueue(dry_payload("sync-1"))
        assert (job.job_id, job.created, job.state) == ("sync-1", True, "waiting")
        assert client.enqueue(dry_payload("sync-1")).created is False
        with pytest.raises(TimeoutError, match=r"'sync-1' is still waiting after 0\.3s"):
            client.wait("sync-1", timeout=0.3)
        with pytest.raises(KeyError):
            client.wait("no-such-job", timeout=1)
        with pytest.raises(InvalidJobError):
            client.enqueue({"source": {}, "outputs": []})
        found = client.status("sync-1")
        assert found is not None and found["state"] == "waiting"
    assert not client._thread.is_alive()
    client.close()  # a second close does nothing
