"""Poison jobs written straight into Redis never wedge the worker (issue 30, item 1).

A raw producer (a plain ``HSET`` and ``LPUSH``, as any BullMQ client does) writes jobs whose
``data`` or ``opts`` the API would refuse: NaN, not JSON, 10,000-deep nesting, a 5,000-digit
integer, a lone surrogate, bytes that are not UTF-8, a literal that overflows a double. Before,
the NaN job froze every housekeeping round (its DLQ write raised), the unparsable ones cycled
between fetch error and stall for ever, and the surrogate one completed with an artifact route
that answered 500. Here a real worker process takes them with valid jobs around them: each bad
one is failed and dead-lettered once, with its reason and raw bytes; the valid ones complete; the
depth gauges keep moving; no route answers 5xx.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from typing import Any

import httpx
import redis.asyncio as aioredis
import worker_media as media
from api_kit import api
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from worker_kit import consumer, eventually, queues

from worker import constants as c
from worker.settings import Settings

INLINE = base64.b64encode(media.jpeg(40, 30)).decode()
GOOD = {"source": {"inline": INLINE}, "outputs": [{"name": "t", "format": "webp", "width": 8, "height": 8}]}
OPTS = b'{"attempts":3,"backoff":{"type":"exponential","delay":200}}'


def data_with(fragment: bytes) -> bytes:
    """A valid dry-run job's JSON with ``fragment`` as its metadata's value."""
    head = json.dumps({**GOOD, "dryRun": True}).encode()[:-1]
    return head + b', "metadata": {"note": ' + fragment + b"}}"


#: id -> (data, opts, the start of the DLQ reason)
POISON: dict[str, tuple[bytes, bytes, str]] = {
    "raw-nan": (data_with(b"NaN"), OPTS, "cannot be read: data is not valid JSON: NaN is not a JSON number"),
    "raw-not-json": (b"{not json", OPTS, "cannot be read: data is not valid JSON"),
    "raw-opts-not-json": (data_with(b"1"), b"[[[", "cannot be read: opts is not valid JSON"),
    "raw-deep": (data_with(b"[" * 10_000 + b"]" * 10_000), OPTS, "cannot be read: data is nested too deeply"),
    "raw-5000-digits": (data_with(b"9" * 5000), OPTS, "cannot be read: data is not valid JSON: Exceeds"),
    "raw-surrogate": (data_with(b'"\\ud800"'), OPTS, "cannot be read: data is not valid UTF-8 text"),
    "raw-not-utf8": (data_with(b'"\xff\xfe"'), OPTS, "cannot be read: data is not valid UTF-8 text"),
    "raw-overflow": (data_with(b"-1e400"), OPTS, "cannot be read: data is not valid JSON: number -1e400"),
    "raw-opts-array": (data_with(b"1"), b"[]", "cannot be read: opts is not a JSON object"),
    "raw-attempts-text": (data_with(b"1"), b'{"attempts":"3"}', "cannot be read: opts.attempts is a string"),
    "raw-backoff-custom": (
        data_with(b"1"),
        b'{"attempts":3,"backoff":{"type":"mine"}}',
        "cannot be read: opts.backoff",
    ),
}
VALID = {"raw-valid-1": data_with(b'"ok"'), "raw-valid-2": data_with(b"2")}


async def write_raw(client: aioredis.Redis, queue: str, job_id: str, data: bytes, opts: bytes) -> None:
    """Add a job as a raw producer does: its hash, its id on the wait list, and the wake-up marker."""
    key = f"{c.BULL_PREFIX}:{queue}"
    fields = {"name": c.JOB_NAME, "data": data, "opts": opts, "timestamp": "1", "delay": "0", "priority": "0"}
    await client.hset(f"{key}:{job_id}", mapping=fields)  # type: ignore[arg-type]
    await client.lpush(f"{key}:wait", job_id)
    await client.zadd(f"{key}:marker", {"0": 0})


def gauges(text: str) -> dict[str, float]:
    """The worker's ``preview_queue_jobs`` gauges by state."""
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == c.METRIC_QUEUE_DEPTH:
            found = {s.labels[c.LABEL_STATE]: s.value for s in family.samples}
    return found


def outcomes(text: str) -> dict[str, float]:
    for family in text_string_to_metric_families(text):
        if family.name == c.METRIC_JOB_OUTCOMES.removesuffix("_total"):
            found: dict[str, float] = {}
            for s in family.samples:
                if s.name.endswith("_total"):  # summed over the reason label
                    found[s.labels[c.LABEL_OUTCOME]] = found.get(s.labels[c.LABEL_OUTCOME], 0.0) + s.value
            return found
    return {}


async def test_poison_jobs_are_dead_lettered_once_and_wedge_nothing(
    settings: Settings, spawn_worker: Any
) -> None:
    raw = aioredis.Redis.from_url(settings.redis_url)  # bytes in, bytes out: a raw producer
    try:
        for job_id, (data, opts, _) in POISON.items():
            await write_raw(raw, settings.queue_name, job_id, data, opts)
        for job_id, data in VALID.items():
            await write_raw(raw, settings.queue_name, job_id, data, OPTS)
        worker = spawn_worker()
        scrape = f"http://127.0.0.1:{worker.port}{c.METRICS_PATH}"
        async with queues(settings) as q, httpx.AsyncClient() as http:

            async def settled() -> bool:
                states = [await q.state(i) for i in [*POISON, *VALID]]
                return states == ["failed"] * len(POISON) + ["completed"] * len(VALID)

            await eventually(settled, timeout=30)

            async def gauges_caught_up() -> dict[str, float]:
                seen = gauges((await http.get(scrape)).text)
                wanted = {"failed": len(POISON), "dlq": len(POISON), "completed": len(VALID), "active": 0}
                return seen if all(seen.get(k) == v for k, v in wanted.items()) else {}

            await eventually(gauges_caught_up, timeout=15)
            entries = {str(e.data["jobId"]): e.data for e in await q.dlq_entries()}
            assert sorted(entries) == sorted(POISON)
            for job_id, (data, opts, reason) in POISON.items():
                entry = entries[job_id]
                assert entry["reason"].startswith(reason), entry["reason"]
                assert entry["data"] is None
                kept = entry["raw"]["data"]
                assert kept["bytes"] == len(data) and kept["truncated"] == (len(data) > c.DLQ_RAW_KEEP_BYTES)
                assert base64.b64decode(kept["base64"]) == data[: c.DLQ_RAW_KEEP_BYTES]
                assert base64.b64decode(entry["raw"]["opts"]["base64"]) == opts
                job = await q.get(job_id)
                assert job is not None and job.attemptsMade == 1, job_id  # failed at once, not retried

            # More housekeeping rounds (one a second) dead-letter nothing twice, and the gauges move.
            await q.add({**GOOD, "dryRun": True, "jobId": "after-the-poison"})

            async def one_more_completed() -> bool:
                return gauges((await http.get(scrape)).text).get("completed") == len(VALID) + 1

            await eventually(one_more_completed, timeout=15)
            counted = outcomes((await http.get(scrape)).text)
            assert counted["dlq"] == counted["invalid"] == len(POISON), counted
            assert len(await q.dlq_entries()) == len(POISON)
        logged = [e for e in worker.events() if e.get("msg") == "job failed"]
        assert sorted(e["jobId"] for e in logged) == sorted(POISON)
        trouble = ("housekeeping step failed", "failed job not dead-lettered", "bullmq error")
        assert not [e for e in worker.events() if e.get("msg") in trouble]

        async with api(settings) as client:
            for job_id in [*POISON, *VALID]:
                for path in ("status", "artifact", "artifact/t"):
                    resp = await client.get(f"/api/preview/job/{job_id}/{path}")
                    assert resp.status_code < 500, (job_id, path, resp.text)
                status = (await client.get(f"/api/preview/job/{job_id}/status")).json()
                assert status["state"] == ("failed" if job_id in POISON else "completed")
    finally:
        await raw.aclose()


async def test_a_url_with_a_tab_from_a_raw_producer_fails_once_not_retried(settings: Settings) -> None:
    bad = {**GOOD, "source": {"url": "http://127.0.0.1:9/a\tb"}, "jobId": "tab-url"}
    async with queues(settings) as q, consumer(settings):
        await q.add(bad)  # no validation on this path: a producer that skips it

        async def failed() -> bool:
            return await q.state("tab-url") == "failed"

        await eventually(failed)
        job = await q.get("tab-url")
        assert job is not None and job.attemptsMade == 1
        (entry,) = [e.data for e in await q.dlq_entries()]
        assert "$.source.url" in entry["reason"] and entry["data"] == bad


def _json_ish() -> st.SearchStrategy[bytes]:
    leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    nest = lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)  # noqa: E731
    return st.recursive(leaves, nest, max_leaves=6).map(lambda v: json.dumps(v).encode())


FIELD = st.binary(max_size=40) | _json_ish() | st.sampled_from([b"{}", b'{"attempts":2}', OPTS])
_round = itertools.count()


# No shrinking: each example runs a consumer for seconds, and a failing one names its jobs anyway.
@hyp_settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(jobs=st.lists(st.tuples(FIELD, FIELD), min_size=4, max_size=12))
def test_any_bytes_in_data_and_opts_end_final_beside_valid_jobs(
    settings: Settings, jobs: list[tuple[bytes, bytes]]
) -> None:
    """The issue's property: arbitrary data and opts straight into Redis, valid jobs alongside; every
    job ends completed or failed (and then dead-lettered) in bounded time, the valid ones
    complete, the depth gauges follow, and no route answers 5xx."""
    s = settings.model_copy(update={"queue_name": f"{settings.queue_name}-{next(_round)}"})
    asyncio.run(_run_batch(s, jobs))


async def _run_batch(s: Settings, jobs: list[tuple[bytes, bytes]]) -> None:
    raw = aioredis.Redis.from_url(s.redis_url)
    valid = {f"ok-{i}": data_with(b'"ok"') for i in range(2)}
    arbitrary = {f"any-{i}": pair for i, pair in enumerate(jobs)}
    try:
        for job_id, (data, opts) in arbitrary.items():
            await write_raw(raw, s.queue_name, job_id, data, opts)
        for job_id, data in valid.items():
            await write_raw(raw, s.queue_name, job_id, data, OPTS)
        async with queues(s) as q, consumer(s) as cons:

            async def final() -> bool:
                states = {i: await q.state(i) for i in [*arbitrary, *valid]}
                dlq = {str(e.data["jobId"]) for e in await q.dlq_entries()}
                done = all(st in ("completed", "failed") for st in states.values())
                return (
                    done
                    and all(states[i] == "completed" for i in valid)
                    and all(i in dlq for i, st in states.items() if st == "failed")
                )

            await eventually(final, timeout=30)

            async def depth_follows() -> bool:
                counts = await q.counts()
                seen = gauges(generate_latest(cons.metrics.registry).decode())
                return all(seen.get(state) == counts[state] for state in c.QUEUE_STATES)

            await eventually(depth_follows, timeout=10)
        async with api(s) as client:
            for job_id in [*arbitrary, *valid]:
                for path in ("status", "artifact", "artifact/t"):
                    resp = await client.get(f"/api/preview/job/{job_id}/{path}")
                    assert resp.status_code < 500, (job_id, path, resp.text)
    finally:
        await raw.aclose()
