"""Redis failover (issue 14, part 3): the worker follows a Sentinel-managed master through a failover.

A real replicated Redis on loopback: one master, two replicas and three sentinels (Debian's
redis-server; the sentinels are the same binary in sentinel mode). The master is SIGKILLed
mid-drain and a replica is promoted. The worker, started once with a ``redis+sentinel://`` URL,
reconnects by itself, and every job completes: a job whose completion the dead master had not yet
replicated is found stalled (or still waiting) on the new master and runs again.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import worker_media as media
from worker_kit import b64, eventually, payload

from mobius_preview_client import connections
from tests.servers import SentinelGroup
from worker.queue import queues
from worker.settings import Settings, redact_url

PASSWORD = "failover-pw"
JOBS = 200


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    g = SentinelGroup(tmp_path / "sentinel", PASSWORD)
    g.start()
    yield g
    g.stop()


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_a_sentinel_url_is_parsed_and_its_passwords_never_printed() -> None:
    url = "redis+sentinel://:pw1@10.0.0.1,10.0.0.2:26380/mobius/2?sentinel_password=pw2"
    target = connections.parse_sentinel(url)
    assert target is not None
    assert (target.sentinels, target.master, target.db) == (
        (("10.0.0.1", 26379), ("10.0.0.2", 26380)),
        "mobius",
        2,
    )
    assert (target.password, target.sentinel_password, target.tls) == ("pw1", "pw2", False)
    assert redact_url(url) == "redis+sentinel://:***@10.0.0.1,10.0.0.2:26380/mobius/2?sentinel_password=***"
    assert Settings(REDIS_URL=url).redis_url == url
    for bad, reason in [
        ("redis+sentinel://:pwX@h1:26379", "needs the master's name"),
        ("redis+sentinel://:pwX@h1:99999/m", "needs sentinels"),
        ("redis+sentinel://:pwX@h1/m?password=pwX", "unknown options"),
    ]:
        with pytest.raises(ValueError, match=reason) as info:
            connections.parse_sentinel(bad)
        assert "pwX" not in str(info.value)


async def test_the_worker_drains_through_a_master_failover(
    group: SentinelGroup, worker_env: dict[str, str], spawn_worker: Any
) -> None:
    settings = Settings(**{**worker_env, "REDIS_URL": group.url})
    image = b64(media.png(64, 48))
    q = queues.Queues(settings, queues.redis_client(group.url, patient=True))
    try:
        for i in range(JOBS):
            await q.add(payload({"inline": image}, f"fo-{i}"))
        old_port = group.master_port()
        with group.client(old_port) as master:
            assert master.execute_command("WAIT", 2, 5000) == 2  # the queue is on both replicas
        worker = spawn_worker(REDIS_URL=group.url, PREVIEW_WORKER_CONCURRENCY="4")
        assert ready(worker.port)

        async def some_done() -> bool:
            return await q.main.getCompletedCount() >= JOBS // 4

        samples: list[tuple[float, bool]] = []  # readiness, every 0.1 s, from before the kill to the end
        sampling = asyncio.create_task(_sample_readiness(worker.port, samples))
        await eventually(some_done, timeout=60)
        killed_at = time.monotonic()
        group.kill(old_port)

        async def promoted() -> bool:
            return group.master_port() != old_port

        await eventually(promoted, timeout=30, every=0.1)

        async def all_done() -> int | bool:
            done = await q.main.getCompletedCount()
            return done >= JOBS and done

        try:
            done = await eventually(all_done, timeout=90, every=0.2)
        except AssertionError as err:  # say where it stuck: the counts and the worker's last words
            tail = "\n".join(worker.logfile.read_text().splitlines()[-15:])
            raise AssertionError(f"{err}; counts {await q.counts()}; worker log:\n{tail}") from None
        recovered = time.monotonic() - killed_at
        assert done == JOBS  # none lost: every job id is in the new master's completed set
        for i in range(JOBS):
            assert await q.state(f"fo-{i}") == "completed"
        assert await q.main.getFailedCount() == 0
        assert worker.proc.poll() is None  # the same process: it reconnected by itself
        await eventually(lambda: asyncio.to_thread(ready, worker.port), timeout=30)
        done_at = time.monotonic()
        await asyncio.sleep(1)
        sampling.cancel()
        assert samples and all(ok for t, ok in samples if t < killed_at)  # green before the failover
        assert all(killed_at <= t <= done_at for t, ok in samples if not ok)  # red only during it
        assert samples[-1][1]  # and green after
        with group.client(group.master_port()) as new:
            assert new.execute_command("ROLE")[0] == "master"
        logged = worker.logfile.read_text()
        assert PASSWORD not in logged  # the URL is only ever printed redacted
        print(f"failover: every job completed {recovered:.1f} s after the master was killed")
    finally:
        await q.close()


async def test_the_pipelined_connection_follows_the_master(group: SentinelGroup) -> None:
    from worker.queue.pipe import PipelinedConnection

    pipe = PipelinedConnection(group.url, reconnect_pause=0.1)
    try:
        assert await pipe.execute("SET", "k", "v") == "OK"
        old_port = group.master_port()
        group.kill(old_port)
        deadline = time.monotonic() + 30
        while True:
            try:
                assert await pipe.execute("SET", "k", "after") == "OK"
                break
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "the pipe never reached the promoted master"
                await asyncio.sleep(0.2)
        assert group.master_port() != old_port
        with group.client(group.master_port()) as new:
            assert new.get("k") == "after"
    finally:
        await pipe.close()


async def test_jobs_in_flight_at_the_failover_run_again_when_nothing_else_waits(
    group: SentinelGroup, worker_env: dict[str, str], spawn_worker: Any, source_server: Any
) -> None:
    # Every slot busy and the queue otherwise empty when the master dies: after the promotion
    # only these jobs are left (active with expired locks), and the worker must still find them.
    slow = source_server.route("/failover/slow.png", body=media.png(64, 48), delay=2.0)
    settings = Settings(**{**worker_env, "REDIS_URL": group.url})
    q = queues.Queues(settings, queues.redis_client(group.url, patient=True))
    try:
        worker = spawn_worker(REDIS_URL=group.url, PREVIEW_WORKER_CONCURRENCY="2")
        for i in range(2):
            await q.add(payload({"url": slow}, f"busy-{i}"))

        async def both_active() -> bool:
            return [await q.state(f"busy-{i}") for i in range(2)] == ["active", "active"]

        await eventually(both_active, timeout=30)
        old_port = group.master_port()
        with group.client(old_port) as master:
            master.execute_command("WAIT", 2, 5000)
        group.kill(old_port)

        async def all_done() -> bool:
            try:
                return [await q.state(f"busy-{i}") for i in range(2)] == ["completed", "completed"]
            except redis.exceptions.RedisError:
                return False

        try:
            await eventually(all_done, timeout=60, every=0.2)

        except AssertionError as err:
            tail = "\n".join(worker.logfile.read_text().splitlines()[-25:])
            raise AssertionError(f"{err}; counts {await q.counts()}; worker log:\n{tail}") from None
    finally:
        await q.close()


async def _sample_readiness(port: int, samples: list[tuple[float, bool]]) -> None:
    while True:
        ok = await asyncio.to_thread(ready, port)
        samples.append((time.monotonic(), ok))  # stamped when answered
        await asyncio.sleep(0.1)


async def test_sentinels_with_their_own_password(tmp_path: Path) -> None:
    # `?sentinel_password=` authenticates to the sentinels; the URL's password to the master.
    with SentinelGroup(tmp_path / "auth", PASSWORD, replicas=1, sentinel_password="sentinel-pw") as g:
        assert g.url.endswith("?sentinel_password=sentinel-pw")
        client = queues.redis_client(g.url)
        try:
            assert await client.set("k", "v") and await client.get("k") == "v"
        finally:
            await client.aclose()
        from worker.queue.pipe import PipelinedConnection

        pipe = PipelinedConnection(g.url)
        try:
            assert await pipe.execute("GET", "k") == "v"
        finally:
            await pipe.close()
        without = g.url.partition("?")[0]  # the sentinels refuse a client without their password
        refused = queues.redis_client(without)
        try:
            with pytest.raises(redis.exceptions.ConnectionError, match="No master found"):
                await refused.get("k")  # every sentinel answered NOAUTH, so none named a master
        finally:
            await refused.aclose()
