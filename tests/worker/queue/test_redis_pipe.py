"""The auto-pipelined connection against a real redis-server: order, one socket, errors,
AUTH/SELECT, lost and silent connections, and the script fallback FastWorker relies on."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from bullmq import Queue
from bullmq.scripts import Scripts
from redis.exceptions import ConnectionError, NoScriptError, ResponseError
from worker_kit import RedisServer, eventually, free_port

from worker import constants as c
from worker.queue.fastpath import PIPELINED_SCRIPTS, FastWorker
from worker.queue.pipe import PipelinedConnection, PipelinedScript, UnsupportedUrl


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-auth"), password="s3cret-pw")
    server.start()
    yield server
    server.stop()


def reads_processed(client: redis.Redis) -> int:
    return int(client.info("stats")["total_reads_processed"])


async def test_replies_match_their_calls_in_order_and_decode_like_redis_py(redis_server: RedisServer) -> None:
    key = f"pipe-{uuid.uuid4().hex[:8]}"
    pipe = PipelinedConnection(redis_server.url)
    try:
        counts = await asyncio.gather(*(pipe.execute("INCR", f"{key}:n") for _ in range(300)))
        assert counts == list(range(1, 301))
        assert await pipe.execute("SET", f"{key}:s", "grüße") == "OK"
        got = await asyncio.gather(
            pipe.execute("GET", f"{key}:s"),
            pipe.execute("GET", f"{key}:missing"),
            pipe.execute("RPUSH", f"{key}:l", b"a", 2, 1.5),
            pipe.execute("LRANGE", f"{key}:l", 0, -1),
        )
        assert got == ["grüße", None, 3, ["a", "2", "1.5"]]
    finally:
        await pipe.close()


async def test_calls_made_in_one_loop_pass_share_one_socket_and_go_out_together(
    redis_server: RedisServer,
) -> None:
    client = redis_server.client()
    pipe = PipelinedConnection(redis_server.url)
    try:
        await pipe.execute("PING")
        clients_before = len(client.client_list())
        reads_before = reads_processed(client)
        await asyncio.gather(*(pipe.execute("PING") for _ in range(200)))
        reads = reads_processed(client) - reads_before
        assert len(client.client_list()) == clients_before
        # One command per read would be 200; one write per loop pass makes it a handful
        # (the server also counts the reads of this test's own INFO calls).
        assert reads < 20, reads
    finally:
        await pipe.close()


async def test_error_replies_raise_redis_py_exceptions_and_the_connection_lives_on(
    redis_server: RedisServer,
) -> None:
    key = f"pipe-{uuid.uuid4().hex[:8]}"
    pipe = PipelinedConnection(redis_server.url)
    try:
        with pytest.raises(NoScriptError):
            await pipe.execute("EVALSHA", "0" * 40, 0)
        await pipe.execute("SET", key, "text")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await pipe.execute("LPUSH", key, "x")
        assert await pipe.execute("EVAL", "return ARGV[1] .. KEYS[1]", 1, "k", "v") == "vk"
    finally:
        await pipe.close()


async def test_password_and_database_come_from_the_url(locked_redis: RedisServer) -> None:
    key = f"pipe-{uuid.uuid4().hex[:8]}"
    base = f"127.0.0.1:{locked_redis.port}"
    for url in (f"redis://:s3cret-pw@{base}/3", f"redis://default:s3cret-pw@{base}?db=3"):
        pipe = PipelinedConnection(url)
        try:
            await pipe.execute("INCR", key)
        finally:
            await pipe.close()
    assert redis.Redis(port=locked_redis.port, password="s3cret-pw", db=3).get(key) == b"2"
    assert redis.Redis(port=locked_redis.port, password="s3cret-pw", db=0).get(key) is None
    wrong = PipelinedConnection(f"redis://:wrong@{base}/3")
    with pytest.raises(ConnectionError, match="cannot open") as caught:
        await wrong.execute("PING")
    assert "wrong" not in str(caught.value) and "s3cret" not in str(caught.value)


async def test_a_killed_connection_fails_its_pending_calls_and_the_next_call_reconnects(
    redis_server: RedisServer,
) -> None:
    client = redis_server.client()
    pipe = PipelinedConnection(redis_server.url, reconnect_pause=0.1)
    try:
        first_id = await pipe.execute("CLIENT", "ID")
        blocked = asyncio.ensure_future(pipe.execute("BLPOP", f"never-{uuid.uuid4().hex}", 30))
        await asyncio.sleep(0.2)
        client.client_kill_filter(_id=first_id)
        with pytest.raises(ConnectionError, match="closed the connection"):
            await asyncio.wait_for(blocked, 5)
        assert await pipe.execute("CLIENT", "ID") != first_id
    finally:
        await pipe.close()


async def test_an_unreachable_server_fails_fast_and_reconnects_are_paused() -> None:
    pipe = PipelinedConnection(f"redis://127.0.0.1:{free_port()}", reconnect_pause=60)
    with pytest.raises(ConnectionError, match="cannot open"):
        await pipe.execute("PING")
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="paused"):
        await pipe.execute("PING")
    assert time.monotonic() - started < 0.1


async def test_a_server_that_stops_answering_is_dropped_after_the_reply_timeout(
    redis_server: RedisServer,
) -> None:
    client = redis_server.client()
    pipe = PipelinedConnection(redis_server.url, reply_timeout=0.5, reconnect_pause=0.0)
    try:
        await pipe.execute("PING")
        client.execute_command("CLIENT", "PAUSE", 3000, "ALL")  # the server reads nothing for 3 s
        started = time.monotonic()
        with pytest.raises(ConnectionError, match="no reply"):
            await pipe.execute("PING")
        assert 0.4 < time.monotonic() - started < 2.5
    finally:
        redis_server.client().execute_command("CLIENT", "UNPAUSE")
        await pipe.close()
    assert await asyncio.wait_for(_ping_after_unpause(redis_server.url), 10) == "PONG"


async def _ping_after_unpause(url: str) -> Any:
    pipe = PipelinedConnection(url)
    try:
        return await pipe.execute("PING")
    finally:
        await pipe.close()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:6379", "redis://127.0.0.1:6379/0?ssl_cert_reqs=none", "redis://h?socket_timeout=5"],
)
def test_urls_it_cannot_honour_are_refused_by_name(url: str) -> None:
    with pytest.raises(UnsupportedUrl, match="does not support"):
        PipelinedConnection(url)


async def test_script_loads_itself_on_noscript_and_falls_back_to_redis_py_on_a_dead_pipe(
    redis_server: RedisServer,
) -> None:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    script = client.register_script("return {KEYS[1], ARGV[1]}")
    live = PipelinedScript(script, PipelinedConnection(redis_server.url))
    dead = PipelinedScript(script, PipelinedConnection(f"redis://127.0.0.1:{free_port()}"))
    try:
        await client.script_flush()
        assert await live(keys=["k"], args=["v"]) == ["k", "v"]  # NOSCRIPT: loaded over the pipe
        assert await live(keys=["k2"], args=[3]) == ["k2", "3"]
        assert (live.loads, live.fallbacks) == (1, 0)
        assert await dead(keys=["k"], args=["v"]) == ["k", "v"]  # through redis-py's client
        assert (dead.loads, dead.fallbacks) == (0, 1)
    finally:
        await live.pipe.close()
        await dead.pipe.close()
        await client.aclose()


async def drain_fast(url: str, total: int, concurrency: int, pause: float = 0.0) -> tuple[FastWorker, str]:
    """Run a FastWorker until Redis holds ``total`` completed jobs.

    Redis, not the worker's "completed" events, decides: when a restart drops the reply to a
    ``moveToFinished`` that did run, the retried call finds the job already completed and
    bullmq reports an error instead of an event, though the job is done.
    """
    name = f"pp-{uuid.uuid4().hex[:8]}"
    q = Queue(name, {"connection": url, "prefix": c.BULL_PREFIX})
    await q.addBulk([{"name": "n", "data": {"i": i}} for i in range(total)])
    await q.close()

    async def process(job: Any, token: str) -> int:
        await asyncio.sleep(pause)
        return int(job.data["i"])

    opts = {"connection": url, "prefix": c.BULL_PREFIX, "concurrency": concurrency, "drainDelay": 5}
    opts |= {"autorun": False, "lockDuration": 5000, "stalledInterval": 2000}
    worker = FastWorker(name, process, opts)
    worker.on("error", lambda *_: None)  # expected around a restart; the outcome is checked in Redis
    runner = asyncio.ensure_future(worker.run())
    client = aioredis.Redis.from_url(url)

    async def all_completed() -> bool:
        try:
            return int(await client.zcard(f"bull:{name}:completed")) == total
        except redis.exceptions.RedisError:  # the server is restarting
            return False

    try:
        await eventually(all_completed, timeout=60)
    finally:
        await worker.close()
        await runner
        await client.aclose()
    return worker, name


async def test_fast_worker_sends_its_job_calls_over_the_pipe(redis_server: RedisServer) -> None:
    worker, name = await drain_fast(redis_server.url, 500, 20)
    commands = worker.scripts.commands
    for script in PIPELINED_SCRIPTS:
        assert isinstance(commands[script], PipelinedScript)
        assert commands[script].fallbacks == 0
    client = redis_server.client()
    assert client.zcard(f"bull:{name}:completed") == 500
    assert client.hget(f"bull:{name}:7", "returnvalue") == "6"  # job ids count from 1, data["i"] from 0


async def test_fast_worker_keeps_the_pooled_path_for_a_url_the_pipe_cannot_honour(
    redis_server: RedisServer,
) -> None:
    worker, name = await drain_fast(f"{redis_server.url}/0?socket_timeout=5", 50, 5)
    assert not isinstance(worker.scripts.commands["moveToFinished"], PipelinedScript)
    assert redis_server.client().zcard(f"bull:{name}:completed") == 50


async def test_fast_worker_rides_out_a_redis_restart_without_losing_a_job(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)  # its own: the restart must not disturb the session's server
    server.start()
    try:
        drained = asyncio.ensure_future(drain_fast(server.url, 400, 10, pause=0.01))
        client = server.client()
        await eventually(lambda: asyncio.sleep(0, _completed_any(client)), timeout=20)
        await asyncio.to_thread(server.restart, 1.0)
        worker, name = await asyncio.wait_for(drained, 90)
        client = server.client()
        assert client.zcard(f"bull:{name}:completed") == 400
        assert client.zcard(f"bull:{name}:failed") == 0
        assert sum(worker.scripts.commands[s].fallbacks for s in PIPELINED_SCRIPTS) > 0
    finally:
        server.stop()


async def test_the_completion_call_goes_straight_to_the_pipe_and_reloads_a_flushed_script(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastWorker sends moveToFinished on the pipe itself, not through bullmq's
    ``Scripts.moveToFinished`` and the script's coroutine (#34); a script flushed mid-drain is
    loaded again over the pipe (NOSCRIPT), and no job is lost or failed."""
    through_bullmq: list[Any] = []
    original = Scripts.moveToFinished

    async def counted(self: Scripts, *args: Any) -> Any:
        through_bullmq.append(args)
        return await original(self, *args)

    monkeypatch.setattr(Scripts, "moveToFinished", counted)
    drained = asyncio.ensure_future(drain_fast(redis_server.url, 400, 5, pause=0.005))
    client = redis_server.client()
    await eventually(lambda: asyncio.sleep(0, _completed_any(client)), timeout=20)
    client.script_flush()
    worker, name = await asyncio.wait_for(drained, 60)
    assert (client.zcard(f"bull:{name}:completed"), client.zcard(f"bull:{name}:failed")) == (400, 0)
    finish = worker.scripts.commands["moveToFinished"]
    assert finish.loads >= 1 and finish.fallbacks == 0
    assert through_bullmq == []


def _completed_any(client: redis.Redis) -> bool:
    return any(client.zcard(k) > 0 for k in client.scan_iter("bull:pp-*:completed"))


async def test_callers_waiting_on_a_cancelled_connect_are_released(redis_server: RedisServer) -> None:
    pipe = PipelinedConnection(redis_server.url)
    first = asyncio.ensure_future(pipe.execute("PING"))
    await asyncio.sleep(0)  # first is connecting now
    second = asyncio.ensure_future(pipe.execute("PING"))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(ConnectionError, match="cancelled"):
        await asyncio.wait_for(second, 5)
    assert first.cancelled()
    assert await pipe.execute("PING") == "PONG"  # and the next call connects again
    await pipe.close()
