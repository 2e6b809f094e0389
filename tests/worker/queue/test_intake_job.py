"""The worker's own ``Job`` construction (``mobius_preview_client/intake.py`` ``_job``, issue 34)
makes exactly the ``Job`` that bullmq's ``Job.fromJSON`` makes: every attribute, for job hashes that
Node.js BullMQ 6.7 wrote and for generated ones (any field, any option, junk values), or the same
exception where ``fromJSON`` raises one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from bullmq import Job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_node_interop import produce

from mobius_preview_client import intake
from worker import constants as c
from worker.queue.fastpath import FastWorker
from worker.settings import Settings


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[FastWorker]:
    worker = FastWorker(settings.queue_name, None, {"connection": settings.redis_url, "autorun": False})
    yield worker
    await worker.close()


def bullmq_job(queue: FastWorker, raw: dict[str, Any], job_id: str | None) -> Job | Exception:
    try:
        job: Job = Job.fromJSON(queue, {**raw, "data": "null"}, job_id)
    except Exception as err:
        return err
    return job


def ours(queue: FastWorker, raw: dict[str, Any], job_id: str | None) -> Job | Exception:
    try:
        return intake._job(queue, raw, job_id, json.loads(raw.get("opts", "{}")))
    except Exception as err:
        return err


def assert_same(queue: FastWorker, raw: dict[str, Any], job_id: str | None) -> None:
    theirs, mine = bullmq_job(queue, raw, job_id), ours(queue, raw, job_id)
    if isinstance(theirs, Exception) or isinstance(mine, Exception):
        assert type(mine) is type(theirs), (raw, mine, theirs)
    else:
        assert vars(mine) == vars(theirs), raw


NODE_OPTS: list[dict[str, Any]] = [
    {"jobId": "n-plain"},
    {"jobId": "n-retry", "attempts": 3, "backoff": {"type": "exponential", "delay": 200}},
    {"jobId": "n-fixed", "attempts": 2, "backoff": 500, "priority": 7},
    {"jobId": "n-delay", "delay": 60_000, "lifo": True},
    {"jobId": "n-keep", "removeOnComplete": 10, "removeOnFail": {"age": 60, "count": 5}, "keepLogs": 3},
    {"jobId": "n-keep-bool", "removeOnComplete": True, "removeOnFail": False, "stackTraceLimit": 2},
    {"jobId": "n-dedup", "deduplication": {"id": "d1"}},
    {"jobId": "n-stamp", "timestamp": 1_700_000_000_000},
]


async def test_jobs_node_wrote_read_as_bullmq_reads_them(
    settings: Settings, node_producer: Path, queue: FastWorker
) -> None:
    jobs = [{"data": {"n": i}, "opts": opts} for i, opts in enumerate(NODE_OPTS)]
    jobs.append({"data": {"n": "auto"}})  # Node.js numbers it
    ids = await produce(node_producer, settings, jobs)
    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        for job_id in ids:
            raw = await client.hgetall(f"{c.BULL_PREFIX}:{settings.queue_name}:{job_id}")
            assert raw["opts"] != "{}" or job_id == ids[-1]
            assert_same(queue, raw, job_id)
            # As it reads back after an attempt failed and another started.
            tried = {**raw, "atm": "1", "ats": "2", "stc": "1", "processedOn": "5", "finishedOn": "6",
                     "failedReason": "boom", "stacktrace": '["at x"]', "progress": '{"p":1}'}  # fmt: skip
            assert_same(queue, tried, job_id)
            job = intake.from_raw(queue, raw, job_id, None)
            assert job.poison is None and job.data == json.loads(raw["data"])
    finally:
        await client.aclose()


JUNK = st.one_of(
    st.sampled_from(["0", "1", "12", "-3", "", "x", "null", "[]", '"s"', "{}", '{"a":1}', "1.5", "[1,"]),
    st.text(max_size=6),
)
FIELDS = st.sampled_from([
    "name", "timestamp", "delay", "priority", "processedOn", "finishedOn", "ats", "atm", "attemptsMade",
    "stc", "progress", "returnvalue", "failedReason", "defa", "rjk", "stacktrace", "parentKey", "parent",
    "id",
])  # fmt: skip
OPTION_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.text(max_size=4),
    st.fixed_dictionaries({"type": st.sampled_from(["fixed", "exponential"]), "delay": st.integers(0, 999)}),
    st.fixed_dictionaries({"id": st.text(max_size=3)}), st.fixed_dictionaries({"age": st.integers(0, 9)}),
)  # fmt: skip
OPTION_KEYS = st.sampled_from([
    "attempts", "backoff", "delay", "priority", "timestamp", "lifo", "jobId", "removeOnComplete",
    "removeOnFail", "kl", "keepLogs", "de", "deduplication", "stackTraceLimit", "fpof", "idof",
    "rdof", "cpof", "parent", "repeatJobKey", "sizeLimit",
])  # fmt: skip


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.dictionaries(FIELDS, JUNK, max_size=8),
    opts=st.dictionaries(OPTION_KEYS, OPTION_VALUES, max_size=6),
    job_id=st.sampled_from([None, "", "j1", "42"]),
)
def test_any_hash_and_options_read_as_bullmq_reads_them(
    queue: FastWorker, fields: dict[str, str], opts: dict[str, Any], job_id: str | None
) -> None:
    assert_same(queue, {**fields, "opts": json.dumps(opts)}, job_id)


def test_a_job_with_parent_links_is_left_to_bullmq(queue: FastWorker) -> None:
    raw = {"name": "p", "timestamp": "1", "opts": json.dumps({"fpof": True, "rdof": True})}
    with pytest.raises(ValueError, match="cannot be used together"):  # bullmq's own check, kept
        intake._job(queue, raw, "j", json.loads(raw["opts"]))
    linked = {"parent": {"id": "p1", "queue": "bull:other"}, "fpof": True}
    job = intake._job(queue, {**raw, "opts": json.dumps(linked)}, "j", linked)
    assert job.parentKey == "bull:other:p1" and job.parent == {
        "id": "p1",
        "queueKey": "bull:other",
        "fpof": True,
    }


def test_short_option_names_are_renamed_and_the_parsed_options_left_alone(queue: FastWorker) -> None:
    """``_job`` skips ``optsFromJSON``'s copy when no option has one of bullmq's short names (#34);
    with one (``kl``, ``de``) they are renamed as bullmq renames them, and either way the gate's
    parsed options are neither changed nor shared with the job."""
    for opts in ({"attempts": 2, "kl": 3, "de": {"id": "d1"}}, {"attempts": 2, "keepLogs": 3}):
        raw = {"name": "n", "timestamp": "1", "opts": json.dumps(opts)}
        parsed = json.loads(raw["opts"])
        assert_same(queue, raw, "j")
        job = intake._job(queue, raw, "j", parsed)
        assert parsed == opts and job.opts is not parsed
        assert job.opts["keepLogs"] == 3 and "kl" not in job.opts
        assert job.deduplication_id == ("d1" if "de" in opts else None)
        job.opts["attempts"] = 9
        assert parsed["attempts"] == 2
