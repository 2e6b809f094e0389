"""Job ids a producer may not choose, refused by the schema, the validator and the real job API.

Each case broke the queue or another job before: ``wait`` turned ``bull:<queue>:wait`` into a
hash (every later enqueue answered 500), ``42`` pre-claimed BullMQ's own next id, and
``"abc\\n"`` passed a ``$``-anchored check and named job ``abc``'s artifact folder.
"""

from __future__ import annotations

import re

import pytest
import redis.asyncio as aioredis
from api_kit import JOB, api

from mobius_preview_client.contract import jobid, validation
from worker.settings import Settings

REFUSED = ["wait", "meta", "id", "stalled-check", "metrics", "0", "42", "9007199254740993", "abc\n", "a\n",
           "-a", ".a", "a b", "a:b", "a" * 129, "", "é"]  # fmt: skip
ACCEPTED = ["a", "order-42-cover", "042", "42a", "waiting", "wait2", "Wait", "a.b_c-d", "a" * 128]


@pytest.mark.parametrize("job_id", REFUSED, ids=repr)
def test_the_schema_and_the_worker_refuse_the_same_ids(job_id: str) -> None:
    assert jobid.problem(job_id) is not None
    found = validation.violations({**JOB, "jobId": job_id})
    assert [(v.path, v.message) for v in found] == [("$.jobId", jobid.problem(job_id))]


@pytest.mark.parametrize("job_id", ACCEPTED, ids=repr)
def test_the_schema_and_the_worker_accept_the_same_ids(job_id: str) -> None:
    assert jobid.problem(job_id) is None
    assert validation.violations({**JOB, "jobId": job_id}) == []


def test_every_key_suffix_of_a_queue_is_in_the_schema() -> None:
    pattern = validation.schema()["properties"]["jobId"]["pattern"]
    listed = re.match(r"\^\(\?!\(\?:0\|\[1-9\]\[0-9\]\*\|([^)]*)\)\$\)", pattern)
    assert listed, pattern
    assert set(listed[1].split("|")) == jobid.QUEUE_KEY_SUFFIXES
    core = {"wait", "paused", "meta", "id", "active", "completed", "failed", "delayed"}
    assert core <= jobid.QUEUE_KEY_SUFFIXES


def test_auto_ids_are_safe_to_read_back_but_not_to_choose() -> None:
    assert jobid.safe("42") and jobid.problem("42") is not None
    assert not jobid.safe("abc\n") and not jobid.safe("../x")


async def test_the_api_refuses_a_queue_key_as_job_id_and_the_queue_keeps_working(settings: Settings) -> None:
    client_redis = aioredis.from_url(settings.redis_url)
    prefix = f"bull:{settings.queue_name}"
    try:
        async with api(settings) as client:
            for job_id in [*sorted(jobid.QUEUE_KEY_SUFFIXES), "42", "abc\n"]:
                resp = await client.post("/api/preview/job", json={**JOB, "jobId": job_id})
                assert resp.status_code == 400, (job_id, resp.text)
                assert resp.json()["violations"] == [{"path": "$.jobId", "message": jobid.problem(job_id)}]
            assert await client_redis.type(f"{prefix}:wait") in (b"none", b"list")
            assert await client_redis.exists(f"{prefix}:42", f"{prefix}:abc") == 0
            ok = await client.post("/api/preview/job", json={**JOB, "jobId": "after-the-refusals"})
            assert ok.status_code == 201
            auto = await client.post("/api/preview/job", json=JOB)
            assert auto.status_code == 201
            metrics = await client.get("/api/preview/queue/metrics")
            assert metrics.status_code == 200 and metrics.json()["waiting"] == 2
    finally:
        await client_redis.aclose()
