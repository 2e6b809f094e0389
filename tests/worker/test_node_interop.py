"""A real Node.js BullMQ 6.7 producer enqueues with its own options; this worker processes the jobs."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import worker_media as media
from worker_http import SourceServer
from worker_kit import OUTPUTS, consumer, queues, wait_state

from worker.settings import Settings


async def produce(script: Path, settings: Settings, jobs: list[dict[str, Any]], deep: int = 0) -> list[str]:
    """Add ``jobs`` with the Node.js producer; ``deep`` nests each ``"DEEP"`` that many arrays down."""
    text = json.dumps(jobs).replace('"DEEP"', "[" * deep + "1" + "]" * deep)
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        settings.redis_url,
        settings.queue_name,
        text,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    ids: list[str] = json.loads(out)["ids"]
    return ids


async def test_node_producer_options_are_honoured(
    settings: Settings, source_server: SourceServer, node_producer: Path
) -> None:
    inline = {"inline": base64.b64encode(media.jpeg(400, 300)).decode()}
    flaky = source_server.route("/node/flaky.jpg", body=media.jpeg(400, 300), fail_first=1)
    down = source_server.route("/node/down.jpg", fail_first=1000)
    backoff = {"type": "fixed", "delay": 100}
    jobs = [
        {"data": {"source": inline, "outputs": OUTPUTS}, "opts": {"jobId": "node-low", "priority": 5}},
        {"data": {"source": inline, "outputs": OUTPUTS}, "opts": {"jobId": "node-high", "priority": 1}},
        {"data": {"source": inline, "outputs": OUTPUTS}, "opts": {"jobId": "node-delayed", "delay": 1500}},
        {
            "data": {"source": {"url": flaky}, "outputs": OUTPUTS},
            "opts": {"jobId": "node-retry", "attempts": 2, "backoff": backoff, "priority": 9},
        },
        {
            "data": {"source": {"url": down}, "outputs": OUTPUTS},
            "opts": {"jobId": "node-down", "attempts": 2, "backoff": backoff, "priority": 9},
        },
        {"data": {"source": inline, "outputs": OUTPUTS}},  # Node.js picks the id
    ]
    ids = await produce(node_producer, settings, jobs)
    assert ids[:5] == ["node-low", "node-high", "node-delayed", "node-retry", "node-down"]
    auto_id = ids[5]
    assert auto_id.isdigit()

    serial = settings.model_copy(update={"concurrency": 1})
    async with queues(settings) as q, consumer(serial):
        for job_id in ("node-low", "node-high", "node-delayed", "node-retry", auto_id):
            await wait_state(q, job_id, "completed")
        await wait_state(q, "node-down", "failed")

        high, low, delayed, retry, down_job = [
            await q.get(i) for i in ("node-high", "node-low", "node-delayed", "node-retry", "node-down")
        ]
        assert high and low and delayed and retry and down_job
        assert high.processedOn < low.processedOn  # priority 1 before priority 5
        assert delayed.processedOn - delayed.timestamp >= 1500
        assert (retry.attemptsMade, source_server.routes["/node/flaky.jpg"].hits) == (2, 2)
        assert down_job.attemptsMade == 2
        (entry,) = await q.dlq_entries()
        assert entry.id == "node-down"
        assert (
            entry.data["reason"] == f"SourceUnavailable: {source_server.url('/node/down.jpg')} answered 503"
        )
    for job_id in ("node-low", "node-high", "node-delayed", "node-retry", auto_id):
        assert (settings.data_dir / job_id / "manifest.json").is_file()


async def test_a_node_job_added_with_no_options_gets_the_workers_retry_policy(
    settings: Settings, source_server: SourceServer, node_producer: Path
) -> None:
    """Node.js BullMQ stores no ``attempts`` for ``queue.add(name, data)``, and BullMQ fails such a
    job at its first error. The worker treats it as ``PREVIEW_JOB_ATTEMPTS`` with its backoff, as it
    would had the API or the Python client added the job."""
    flaky = source_server.route("/node/no-opts-flaky.jpg", body=media.jpeg(400, 300), fail_first=1)
    down = source_server.route("/node/no-opts-down.jpg", fail_first=1000)
    ids = await produce(node_producer, settings, [
        {"data": {"source": {"url": flaky}, "outputs": OUTPUTS}, "opts": {"jobId": "bare-flaky"}},
        {"data": {"source": {"url": down}, "outputs": OUTPUTS}, "opts": {"jobId": "bare-down"}},
    ])  # fmt: skip
    assert ids == ["bare-flaky", "bare-down"]
    policy = settings.model_copy(update={"job_attempts": 3, "backoff_ms": 50})
    async with queues(settings) as q, consumer(policy):
        await wait_state(q, "bare-flaky", "completed")
        await wait_state(q, "bare-down", "failed")
        flaky_job, down_job = await q.get("bare-flaky"), await q.get("bare-down")
        assert flaky_job and down_job
        stored = json.loads(await q.client.hget(f"bull:{settings.queue_name}:bare-down", "opts"))
        assert stored.get("attempts", 0) == 0  # as Node.js wrote it: no attempts of its own
        assert (flaky_job.attemptsMade, source_server.routes["/node/no-opts-flaky.jpg"].hits) == (2, 2)
        assert (down_job.attemptsMade, source_server.routes["/node/no-opts-down.jpg"].hits) == (3, 3)
        (entry,) = await q.dlq_entries()
        assert (entry.id, entry.data["attemptsMade"], entry.data["opts"]["attempts"]) == ("bare-down", 3, 3)


async def test_node_jobs_the_api_would_refuse_are_dead_lettered_once(
    settings: Settings, node_producer: Path
) -> None:
    """Node's JSON.stringify writes a lone surrogate as ``\\ud800`` and nests as deep as asked."""
    good = {"source": {"inline": base64.b64encode(media.jpeg(40, 30)).decode()}, "outputs": OUTPUTS}
    jobs = [
        {"data": {**good, "metadata": {"note": "\ud800"}}, "opts": {"jobId": "node-surrogate"}},
        {"data": {**good, "metadata": {"deep": "DEEP"}}, "opts": {"jobId": "node-deep"}},
        {"data": {**good, "dryRun": True}, "opts": {"jobId": "node-fine"}},
    ]
    await produce(node_producer, settings, jobs, deep=3000)
    async with queues(settings) as q, consumer(settings):
        await wait_state(q, "node-fine", "completed")
        await wait_state(q, "node-surrogate", "failed")
        await wait_state(q, "node-deep", "failed")
        await asyncio.sleep(1.5)  # a housekeeping round or more: nothing is dead-lettered twice
        entries = {e.data["jobId"]: e.data for e in await q.dlq_entries()}
    assert sorted(entries) == ["node-deep", "node-surrogate"]
    assert entries["node-surrogate"]["reason"].startswith("cannot be read: data is not valid UTF-8 text")
    assert entries["node-deep"]["reason"] == "cannot be read: data is nested too deeply"
    kept = base64.b64decode(entries["node-surrogate"]["raw"]["data"]["base64"])
    assert b'"note":"\\ud800"' in kept
