"""Housekeeping isolates each job, and every job read back from Redis passes the one JSON gate
(issue 30, item 1), against a real redis-server.

Before, one failed job whose DLQ write raised (NaN in its data) stopped every later round in
``sweep_failed``, so the DLQ was never trimmed and the depth gauges froze.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from typing import Any

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from worker_kit import queues

from mobius_preview_client.contract import validation
from mobius_preview_client.jobs import status
from worker import constants as c
from worker.consumer import Consumer
from worker.errors import InvalidJobError
from worker.metrics import Metrics
from worker.settings import Settings

GOOD = {"source": {"inline": "AAAA"}, "outputs": [{"name": "t", "format": "webp", "width": 8, "height": 8}]}


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, {c.LABEL_TRACK: m.track, c.LABEL_RELEASE: m.release, **labels})


def outcome(m: Metrics, outcome: str, reason: str) -> float | None:
    return value(m, c.METRIC_JOB_OUTCOMES, outcome=outcome, reason=reason)


async def failed_raw(raw: aioredis.Redis, queue: str, job_id: str, data: bytes, reason: str) -> None:
    """A job BullMQ failed on its own (too many stalls): its hash and its place in ``failed``."""
    key = f"{c.BULL_PREFIX}:{queue}"
    fields = {"name": c.JOB_NAME, "data": data, "opts": b"{}", "timestamp": "1", "failedReason": reason}
    await raw.hset(f"{key}:{job_id}", mapping=fields)  # type: ignore[arg-type]
    await raw.zadd(f"{key}:failed", {job_id: 1})


async def test_one_bad_entry_is_counted_and_skipped_and_the_round_runs_on(settings: Settings) -> None:
    s = settings.model_copy(update={"keep_dlq_count": 2})
    raw = aioredis.Redis.from_url(s.redis_url)
    key = f"{c.BULL_PREFIX}:{s.queue_name}"
    cons = Consumer(s, Metrics(s.track, queue=s.queue_name))
    try:
        await failed_raw(raw, s.queue_name, "stalled-ok", json.dumps(GOOD).encode(), "stalled too often")
        await failed_raw(raw, s.queue_name, "stalled-nan", b'{"width": NaN}', "stalled too often")
        await raw.set(f"{key}:wrong-type", "not a hash")  # every read of it answers WRONGTYPE
        await raw.zadd(f"{key}:failed", {"wrong-type": 2})
        dlq = f"{c.BULL_PREFIX}:{s.dlq_name}"
        for i in range(4):  # more DLQ entries than kept, one of them unreadable
            await raw.hset(f"{dlq}:old-{i}", mapping={"name": c.JOB_NAME, "data": b"{bad" if i else b"{}"})
            await raw.lpush(f"{dlq}:wait", f"old-{i}")

        m = cons.metrics
        for round_ in (1, 2, 3):
            assert await cons.housekeeping_round() is False
            assert value(m, c.METRIC_HOUSEKEEPING_ERRORS, step="sweep") == round_
            failing = 1 if round_ >= c.HOUSEKEEPING_FAILING_ROUNDS else 0
            assert value(m, c.METRIC_HOUSEKEEPING_FAILING) == failing
            # The rest of the round ran: both readable failures swept once, the DLQ trimmed, gauges set.
            assert (outcome(m, "dlq", c.REASON_LOST), outcome(m, "dlq", c.REASON_INVALID)) == (1, 1)
            # Each swept job's one outcome is failed, so the availability SLI sees it; the
            # unreadable one is the producer's (invalid), left out of the SLI like any invalid job.
            # The readable one was failed by the queue itself (too many stalls): reason lost.
            assert outcome(m, c.FAILED_OUTCOME, c.REASON_LOST) == 1
            assert outcome(m, c.FAILED_OUTCOME, c.REASON_INVALID) == 1
            assert outcome(m, c.INVALID_OUTCOME, c.REASON_INVALID) == 1
            assert value(m, c.METRIC_QUEUE_DEPTH, queue=s.queue_name, state="failed") == 3
            assert value(m, c.METRIC_QUEUE_DEPTH, queue=s.queue_name, state="dlq") == 2
        assert value(m, c.METRIC_HOUSEKEEPING_ERRORS, step="trim") == 0
        async with queues(s) as q:
            entries = {str(e.data["jobId"]): e.data for e in await q.dlq_entries()}
        assert set(entries) == {"stalled-ok", "stalled-nan"}
        assert entries["stalled-ok"]["data"] == GOOD
        assert entries["stalled-nan"]["reason"].startswith("stalled too often; cannot be read: data is not")
        assert base64.b64decode(entries["stalled-nan"]["raw"]["data"]["base64"]) == b'{"width": NaN}'

        await raw.delete(f"{key}:wrong-type")
        await raw.zrem(f"{key}:failed", "wrong-type")
        assert await cons.housekeeping_round() is True
        assert value(m, c.METRIC_HOUSEKEEPING_FAILING) == 0
    finally:
        await cons.stop(0)
        await raw.aclose()


def _json_ish() -> st.SearchStrategy[bytes]:
    leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    nest = lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids)  # noqa: E731
    values = st.recursive(leaves, nest, max_leaves=8)
    return values.map(lambda v: json.dumps(v).encode())  # NaN and Infinity included


_ids = itertools.count()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=64) | _json_ish(), opts=st.binary(max_size=32) | _json_ish() | st.just(b"{}"))
def test_any_bytes_read_back_are_a_job_or_a_poison_that_dead_letters(
    settings: Settings, data: bytes, opts: bytes
) -> None:
    asyncio.run(_read_back(settings, data, opts))


async def _read_back(settings: Settings, data: bytes, opts: bytes) -> None:
    job_id = f"prop-{next(_ids)}"
    raw = aioredis.Redis.from_url(settings.redis_url)
    try:
        mapping: dict[str, Any] = {"name": c.JOB_NAME, "data": data, "opts": opts, "timestamp": "1"}
        await raw.hset(f"{c.BULL_PREFIX}:{settings.queue_name}:{job_id}", mapping=mapping)
        async with queues(settings) as q:
            job = await q.get(job_id)
            assert job is not None
            doc = status(job, "failed")
            json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")  # the status route's 200
            if job.poison is None:
                assert job.data == validation.parse(data)  # the gate passed it: the API would have too
                return
            try:
                validation.parse(data)
                opts_ok = isinstance(validation.parse(opts), dict)
            except InvalidJobError:
                opts_ok = False
            assert not opts_ok or job.poison.reason.startswith("cannot be read: bullmq"), job.poison
            await q.dead_letter(job, job.poison.reason, 1)
            entry = next(e.data for e in await q.dlq_entries() if e.data["jobId"] == job_id)
            assert base64.b64decode(entry["raw"]["data"]["base64"]) == data
            assert base64.b64decode(entry["raw"]["opts"]["base64"]) == opts
    finally:
        await raw.aclose()
