"""FastWorker against a real redis-server: one Lua call per job, pooled hiredis-packed client,
sub-second blocking, and bullmq's own outcomes for completed, failed and delayed jobs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
from bullmq import Queue, Worker
from redis.asyncio.connection import Connection
from worker_kit import RedisServer, eventually

from worker import constants as c
from worker.queue.fastpath import FastWorker, hiredis_packing, pooled_client


def opts(url: str, concurrency: int) -> dict[str, Any]:
    return {
        "connection": url,
        "prefix": c.BULL_PREFIX,
        "concurrency": concurrency,
        "drainDelay": 5,
        "lockDuration": 5000,
        "stalledInterval": 5000,
    }


@asynccontextmanager
async def producer(url: str, name: str) -> AsyncIterator[Queue]:
    q = Queue(name, {"connection": url, "prefix": c.BULL_PREFIX})
    try:
        yield q
    finally:
        await q.close()


def lua_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{cmd}", {}).get("calls", 0)) for cmd in ("evalsha", "eval"))


async def drain(
    worker_cls: type[Worker], url: str, name: str, total: int, concurrency: int, **kw: Any
) -> tuple[list[Any], Worker]:
    seen: list[Any] = []
    done = asyncio.Event()

    async def process(job: Any, token: str) -> dict[str, Any]:
        return {"double": job.data["i"] * 2}

    def completed(job: Any, result: Any) -> None:
        seen.append(job.id)
        if len(seen) == total:
            done.set()

    worker = worker_cls(name, process, {**opts(url, concurrency), "autorun": False}, **kw)
    worker.on("completed", completed)
    runner = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(done.wait(), 60)
    await worker.close()
    await runner
    return seen, worker


async def test_one_lua_call_per_job_where_plain_bullmq_makes_two(redis_server: RedisServer) -> None:
    client = redis_server.client()
    counts = {}
    for cls in (FastWorker, Worker):
        name = f"fp-{uuid.uuid4().hex[:8]}"
        async with producer(redis_server.url, name) as q:
            await q.addBulk([{"name": "n", "data": {"i": i}} for i in range(100)])
        client.config_resetstat()
        seen, _ = await drain(cls, redis_server.url, name, 100, 1)
        counts[cls.__name__] = lua_calls(client)
        assert sorted(seen, key=int) == [str(i) for i in range(1, 101)]
        assert client.zcard(f"bull:{name}:completed") == 100
        assert client.hget(f"bull:{name}:42", "returnvalue") == '{"double":82}'
    # moveToActive for the first job, moveToFinished (+ next) per job, one more to see it drained,
    # plus housekeeping; plain bullmq pays moveToActive again for every job.
    assert counts["FastWorker"] <= 100 + 6, counts
    assert counts["Worker"] >= 200, counts


async def test_pooled_client_and_redis_version_are_used(redis_server: RedisServer) -> None:
    name = f"fp-{uuid.uuid4().hex[:8]}"
    async with producer(redis_server.url, name) as q:
        await q.addBulk([{"name": "n", "data": {"i": i}} for i in range(300)])
    seen, worker = await drain(FastWorker, redis_server.url, name, 300, 20)
    assert len(set(seen)) == 300
    assert worker.client.single_connection_client is False
    assert worker.client.connection_pool.connection_class.__name__ == "HiredisPackingConnection"
    assert worker.blockingRedisConnection.version == redis_server.client().info()["redis_version"]
    assert worker.blockingRedisConnection.capabilities == {"canBlockFor1Ms": True, "canDoubleTimeout": True}


async def test_delayed_job_starts_on_time_not_on_the_next_whole_second(redis_server: RedisServer) -> None:
    name = f"fp-{uuid.uuid4().hex[:8]}"
    started: list[float] = []

    async def process(job: Any, token: str) -> None:
        started.append(time.time())

    worker = FastWorker(name, process, opts(redis_server.url, 1))
    try:
        await asyncio.sleep(0.5)  # idle: blocked on the marker
        async with producer(redis_server.url, name) as q:
            due = time.time() + 0.1
            await q.add("d", {}, {"delay": 100})
        await eventually(lambda: asyncio.sleep(0, bool(started)), timeout=10)
        # bullmq's whole-second rounding would start it about 0.9 s late.
        assert started[0] - due < 0.5, started[0] - due
    finally:
        await worker.close()


async def test_failures_retries_and_unrecoverable_errors_keep_bullmq_semantics(
    redis_server: RedisServer,
) -> None:
    from bullmq import UnrecoverableError

    name = f"fp-{uuid.uuid4().hex[:8]}"
    attempts: dict[str, int] = {}

    async def process(job: Any, token: str) -> str:
        attempts[job.id] = attempts.get(job.id, 0) + 1
        if job.data["kind"] == "flaky" and attempts[job.id] == 1:
            raise RuntimeError("try again")
        if job.data["kind"] == "bad":
            raise UnrecoverableError("never")
        return "ok"

    worker = FastWorker(name, process, opts(redis_server.url, 2))
    try:
        async with producer(redis_server.url, name) as q:
            await q.add("f", {"kind": "flaky"}, {"jobId": "flaky", "attempts": 3})
            await q.add("b", {"kind": "bad"}, {"jobId": "bad", "attempts": 3})
            await q.add("g", {"kind": "good"}, {"jobId": "good"})

            async def settled() -> bool:
                states = [await q.getJobState(j) for j in ("flaky", "bad", "good")]
                return states == ["completed", "failed", "completed"]

            await eventually(settled, timeout=20)
            bad = await q.getJob("bad")
            assert bad.failedReason == "never" and bad.attemptsMade == 1
            flaky = await q.getJob("flaky")
            assert flaky.returnvalue == "ok" and attempts["flaky"] == 2
    finally:
        await worker.close()


def test_hiredis_packing_is_byte_identical_to_redis_py() -> None:

    args: tuple[Any, ...] = (
        "EVALSHA",
        "a" * 40,
        3,
        "bull:q:wait",
        b"bull:q:\xff",
        "é",
        17,
        1.5,
        -2,
        memoryview(b"mv"),
        bytearray(b"ba"),
    )
    plain = Connection()
    fast = hiredis_packing(pooled_client("redis://127.0.0.1:1", 2)).connection_pool.make_connection()
    assert b"".join(fast.pack_command(*args)) == b"".join(plain.pack_command(*args))
    assert b"".join(fast.pack_command("CLIENT SETNAME", "x")) == b"".join(
        plain.pack_command("CLIENT SETNAME", "x")
    )


async def test_an_idle_blocking_wait_never_races_its_socket_timeout(redis_server: RedisServer) -> None:
    """bullmq blocks up to drainDelay (5 s here) and redis-py's default read timeout is also 5 s:
    the two raced, so an idle worker kept reconnecting and a close() in the race could hang."""
    name = f"fp-{uuid.uuid4().hex[:8]}"
    client = redis_server.client()
    idle_opts = {**opts(redis_server.url, 1), "drainDelay": 5}
    worker = FastWorker(name, lambda job, token: asyncio.sleep(0), idle_opts)
    try:
        await asyncio.sleep(0.5)
        before = int(client.info("stats")["total_connections_received"])
        await asyncio.sleep(11)  # two whole blocking waits
        assert int(client.info("stats")["total_connections_received"]) == before
    finally:
        started = time.monotonic()
        await asyncio.wait_for(worker.close(), 10)
    assert time.monotonic() - started < 2


async def test_the_completion_call_sends_what_bullmq_would(
    redis_server: RedisServer, monkeypatch: Any
) -> None:
    """``FastWorker._completed_args`` keeps the queue's keys between jobs; the keys and arguments it
    sends are bullmq's ``moveToCompletedArgs``, byte for byte, whatever the job and its options."""
    from bullmq import Job

    monkeypatch.setattr(time, "time", lambda: 1_765_000_000.1234)
    worker = FastWorker(
        "fp-args", None, {**opts(redis_server.url, 5), "autorun": False, "limiter": {"max": 3}}
    )
    try:
        values: list[Any] = [None, {"outcome": "dryrun", "renditions": 0}, "text", 3, [1.5, "é"]]
        keeps: list[Any] = [False, True, None, 0, 7, {"age": 60, "count": 1000}, {"count": 5}]
        job_opts: list[dict[str, Any]] = [
            {},
            {"attempts": 3},
            {"failParentOnFailure": True},
            {"removeDependencyOnFailure": True, "attempts": 2},
        ]
        for i, (value, keep, extra) in enumerate((v, k, o) for v in values for k in keeps for o in job_opts):
            job = Job(worker, "n", {}, {"jobId": f"j{i}", **extra})
            job.attemptsMade = i % 3
            for fetch in (True, False):
                expected = worker.scripts.moveToCompletedArgs(job, value, keep, f"tok:{i}", fetch)
                assert worker._completed_args(job, value, keep, f"tok:{i}", fetch) == expected
        worker.opts["metrics"] = {"maxDataPoints": 60}  # the queue's options are read on every call
        job = Job(worker, "n", {}, {"jobId": "m"})
        expected = worker.scripts.moveToCompletedArgs(job, None, False, "t", True)
        assert worker._completed_args(job, None, False, "t", True) == expected
    finally:
        await worker.close()


async def test_a_jobs_bookkeeping_runs_while_the_next_jobs_completion_is_in_flight(
    redis_server: RedisServer,
) -> None:
    """At concurrency 1, ``settled`` of a job that came with a next job runs once that next job's
    completion call is on its way to Redis (#34): its log line and counters are off the round trip.
    Every job is still settled once, recorded, in order."""
    name = f"fp-{uuid.uuid4().hex[:8]}"
    async with producer(redis_server.url, name) as q:
        await q.addBulk([{"name": "n", "data": {"i": i}} for i in range(20)])
    events: list[tuple[str, str, int]] = []
    done = asyncio.Event()

    async def process(job: Any, token: str) -> None:
        events.append(("process", job.id, 0))

    worker = FastWorker(name, process, {**opts(redis_server.url, 1), "autorun": False})

    def settled(job: Any, token: str, recorded: bool) -> None:
        assert worker._pipe is not None and worker._pipe._proto is not None
        events.append(("settled", job.id, len(worker._pipe._proto.pending)))
        assert recorded
        if len([e for e in events if e[0] == "settled"]) == 20:
            done.set()

    worker.on("settled", settled)
    runner = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(done.wait(), 30)
    await worker.close()
    await runner
    settles = [e for e in events if e[0] == "settled"]
    assert [int(e[1]) for e in settles] == list(range(1, 21))
    for job_id in range(1, 20):  # every job but the last came with a next one
        at = events.index(("settled", str(job_id), 1))  # one call in flight: the next job's completion
        assert events.index(("process", str(job_id + 1), 0)) < at


@pytest.mark.parametrize(
    "reply",
    [
        None,
        [],
        [[], "7", 0, 0],
        [["name", "n", "data", '{"i":1}', "opts", "{}", "timestamp", "1"], "7", 5, 0],
        [["name", "n", "data"], "8", 0, 0],  # odd: bullmq's own path, and its error
        [["a", "1"], "9"],
    ],
)
def test_the_completion_reply_reads_as_bullmqs(reply: Any) -> None:
    """FastWorker._moved gives what bullmq's Scripts.moveToFinished returns for the same reply."""
    from bullmq.scripts import raw2NextJobData

    worker = FastWorker.__new__(FastWorker)
    try:
        expected: Any = raw2NextJobData(reply) if reply is not None else None
    except IndexError as err:
        with pytest.raises(type(err)):
            worker._moved("7", reply)
        return
    assert worker._moved("7", reply) == expected


def test_events_reach_every_listener_and_none_is_needed() -> None:
    worker = FastWorker.__new__(FastWorker)
    worker._callbacks = {}
    heard: list[tuple[Any, ...]] = []
    worker.emit("completed", 1)  # no listener: nothing happens
    worker.on("completed", lambda *a: heard.append(("a", *a)))
    worker.on("completed", lambda *a: heard.append(("b", *a)))
    worker.emit("completed", 1, 2)
    assert heard == [("a", 1, 2), ("b", 1, 2)]


async def test_the_shared_packer_starts_afresh_after_a_value_it_cannot_pack(
    redis_server: RedisServer, monkeypatch: Any
) -> None:
    """``_completed_args`` packs with one ``msgpack.Packer`` for the process (#34): a call that fails
    half-way (a queue option msgpack cannot pack) leaves nothing behind in it for the next call."""
    from bullmq import Job

    monkeypatch.setattr(time, "time", lambda: 1_765_000_000.1234)
    worker = FastWorker("fp-pack", None, {**opts(redis_server.url, 5), "autorun": False})
    try:
        job = Job(worker, "n", {}, {"jobId": "p1"})
        expected = worker.scripts.moveToCompletedArgs(job, None, False, "t", True)
        worker.opts["limiter"] = {"max": object()}
        with pytest.raises(TypeError):
            worker._completed_args(job, None, False, "t", True)
        del worker.opts["limiter"]
        assert worker._completed_args(job, None, False, "t", True) == expected
    finally:
        await worker.close()
