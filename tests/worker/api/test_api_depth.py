"""The job API exports the queue's depth on /metrics (what KEDA wakes a scaled-to-zero track by)."""

from __future__ import annotations

import asyncio
import base64

import worker_media as media
from bullmq import Queue
from prometheus_client.parser import text_string_to_metric_families
from worker_kit import AUTH, OUTPUTS, free_port, queues, served

from worker import constants as c
from worker.api.app import create_app
from worker.api.instrumentation import DepthSampler
from worker.metrics import ApiMetrics
from worker.settings import Settings

JOB = {"source": {"inline": base64.b64encode(media.jpeg(64, 48)).decode()}, "outputs": OUTPUTS}


def depth(text: str, queue: str) -> dict[str, float]:
    """``{state: value}`` of ``preview_queue_jobs`` for ``queue`` in a scrape."""
    return {
        s.labels[c.LABEL_STATE]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == c.METRIC_QUEUE_DEPTH and s.labels[c.LABEL_QUEUE] == queue
    }


async def scrape(settings: Settings) -> str:
    async with served(create_app(settings), AUTH) as client:
        for i in range(3):
            assert (await client.post("/api/preview/job", json={**JOB, "jobId": f"d-{i}"})).status_code == 201
        response = await client.get(c.METRICS_PATH)
        assert response.status_code == 200
        return response.text


async def test_metrics_count_plain_and_prioritised_jobs_as_waiting(settings: Settings) -> None:
    producer = Queue(settings.queue_name, {"connection": settings.redis_url, "prefix": c.BULL_PREFIX})
    try:
        await producer.add(c.JOB_NAME, {**JOB, "jobId": "urgent"}, {"jobId": "urgent", "priority": 3})
        found = depth(await scrape(settings), settings.queue_name)
    finally:
        await producer.close()
    assert found["waiting"] == 4  # 3 through the API, 1 prioritised by a producer
    assert set(found) == set(c.QUEUE_STATES)
    assert found["active"] == found["failed"] == 0


async def test_redis_down_drops_the_series_and_still_answers(settings: Settings) -> None:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with served(create_app(down)) as client:
        response = await client.get(c.METRICS_PATH)
    assert response.status_code == 200
    assert depth(response.text, down.queue_name) == {}  # no series, never a stale or made-up 0


async def test_scrapes_cost_redis_one_read_per_interval(settings: Settings) -> None:
    async with queues(settings) as q:
        reads = 0

        async def counting() -> dict[str, int]:
            nonlocal reads
            reads += 1
            return await q.counts()

        metrics = ApiMetrics("stable", queue=settings.queue_name)
        sampler = DepthSampler(metrics, counting, min_interval=0.5)
        await asyncio.gather(*(sampler.refresh() for _ in range(50)))
        assert reads == 1
        await q.main.add(c.JOB_NAME, JOB, {"jobId": "late"})
        await sampler.refresh()
        assert reads == 1  # inside the interval: the gauge keeps the last read
        await asyncio.sleep(0.6)
        await sampler.refresh()
    assert reads == 2
    waiting = {c.LABEL_TRACK: "stable", c.LABEL_RELEASE: c.RELEASE_LOCAL, c.LABEL_QUEUE: settings.queue_name}
    waiting[c.LABEL_STATE] = "waiting"
    assert metrics.registry.get_sample_value(c.METRIC_QUEUE_DEPTH, waiting) == 1


async def test_a_slow_read_times_out_and_drops_the_series(settings: Settings) -> None:
    metrics = ApiMetrics("stable", queue=settings.queue_name)
    metrics.set_depth({"waiting": 9})

    async def stuck() -> dict[str, int]:
        await asyncio.sleep(30)
        return {}

    await DepthSampler(metrics, stuck, timeout=0.2).refresh()
    assert list(metrics.queue_depth.collect()[0].samples) == []
