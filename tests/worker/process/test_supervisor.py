"""The per-core supervisor as real processes: children, one set of pod metrics, SIGTERM drain, restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
from typing import Any

import worker_media as media
from worker_http import SourceServer
from worker_kit import b64, eventually, payload, queues, state_of, wait_state

from worker import constants as c
from worker.settings import Settings


async def wait_exit(proc: Any, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while proc.proc.poll() is None:
        assert time.monotonic() < deadline, "process did not exit"
        await asyncio.sleep(0.05)
    return int(proc.proc.returncode)


def children(worker: Any) -> list[int]:
    return [e["pid"] for e in worker.events() if e["msg"] == "worker process started"]


async def ready_children(worker: Any, count: int) -> list[int]:
    async def probe() -> list[int]:
        ready = [e["pid"] for e in worker.events() if e["msg"] == "worker ready" and e.get("supervised")]
        return ready if len(ready) >= count else []

    return await eventually(probe, timeout=60)


def scrape(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return [line for line in resp.read().decode().splitlines() if not line.startswith("#")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_two_processes_report_one_set_of_series(settings: Settings, spawn_worker: Any) -> None:
    worker = spawn_worker(PREVIEW_WORKER_PROCESSES="2")
    pids = await ready_children(worker, 2)
    assert len(set(pids)) == 2 and os.getpid() not in pids
    image = {"inline": b64(media.jpeg(64, 48))}
    async with queues(settings) as q:
        for i in range(8):
            await q.enqueue(payload(image, f"sup-{i}", dryRun=True))
        for i in range(8):
            await wait_state(q, f"sup-{i}", "completed", timeout=30)

    async def counted() -> list[str]:
        lines = scrape(worker.port)
        done = [
            ln for ln in lines if ln.startswith(f"{c.METRIC_JOB_OUTCOMES}{{") and 'outcome="dryrun"' in ln
        ]
        return lines if done and done[0].endswith(" 8.0") else []

    lines = await eventually(counted, timeout=10)
    dryrun = [ln for ln in lines if ln.startswith(f"{c.METRIC_JOB_OUTCOMES}{{") and "dryrun" in ln]
    own = 'release="local",track="stable"'  # one series per pod: the children's add up
    assert dryrun == [f'{c.METRIC_JOB_OUTCOMES}{{outcome="dryrun",reason="none",{own}}} 8.0']
    assert f"{c.METRIC_JOBS_TAKEN}{{{own}}} 8.0" in lines
    assert [ln for ln in lines if ln.startswith(c.METRIC_JOBS_IN_FLIGHT)] == [
        f"{c.METRIC_JOBS_IN_FLIGHT}{{{own}}} 0.0"
    ]
    depth = [ln for ln in lines if ln.startswith(f"{c.METRIC_QUEUE_DEPTH}{{")]
    assert len(depth) == 6 and not any("pid=" in ln for ln in lines)


async def test_sigterm_is_forwarded_and_children_drain(
    settings: Settings, source_server: SourceServer, spawn_worker: Any
) -> None:
    slow = source_server.route("/sup/slow.jpg", body=media.jpeg(400, 300), delay=1.5)
    worker = spawn_worker(PREVIEW_WORKER_PROCESSES="2")
    pids = await ready_children(worker, 2)
    async with queues(settings) as q:
        await q.enqueue(payload({"url": slow}, "sup-drain"))
        await wait_state(q, "sup-drain", "active")
        # Let the idle child reach its fetch loop: a SIGTERM within ~20 ms of a child's start has
        # been seen once to make that idle child wait out the whole grace period (reported, open).
        await asyncio.sleep(0.5)
        worker.proc.send_signal(signal.SIGTERM)
        assert await wait_exit(worker, 30) == 0
        assert await state_of(q, "sup-drain") == "completed"
    stopped = [e for e in worker.events() if e["msg"] == "worker stopped"]
    assert len(stopped) == 2 and all(e["drained"] for e in stopped)
    assert not any(alive(pid) for pid in pids)


async def test_a_killed_child_is_replaced(spawn_worker: Any) -> None:
    worker = spawn_worker(PREVIEW_WORKER_PROCESSES="2")
    first = await ready_children(worker, 2)
    os.kill(first[0], signal.SIGKILL)

    async def replaced() -> bool:
        return len(children(worker)) == 3

    await eventually(replaced, timeout=30)
    await ready_children(worker, 3)
    assert any(
        e["msg"] == "worker process exited, restarting" and e["pid"] == first[0] for e in worker.events()
    )


async def test_the_pod_is_not_ready_while_a_child_cannot_fetch(settings: Settings, spawn_worker: Any) -> None:
    # Issue 16, item 1, with PREVIEW_WORKER_PROCESSES=2: the supervisor's /readyz used to check
    # Redis only, so it stayed 200 while every child's fetch answered WRONGTYPE.
    import httpx

    worker = spawn_worker(PREVIEW_WORKER_PROCESSES="2", PREVIEW_RUN_RETRY_DELAY_MS="100")
    await ready_children(worker, 2)
    wait_key, marker = f"bull:{settings.queue_name}:wait", f"bull:{settings.queue_name}:marker"
    async with queues(settings) as q, httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}") as http:

        async def status(expected: int) -> bool:
            return (await http.get("/readyz")).status_code == expected

        await eventually(lambda: status(200), timeout=30)
        await q.client.hset(wait_key, "not", "a list")
        await q.client.zadd(marker, {"0": 0})  # wakes the fetchers, whose move-to-active now fails
        await eventually(lambda: status(503), timeout=15)
        assert (await http.get("/healthz")).status_code == 200
        assert f'{c.METRIC_FETCHING}{{release="local",track="stable"}} 0.0' in scrape(worker.port)
        await q.client.delete(wait_key)
        await q.enqueue(payload({"inline": b64(media.jpeg(40, 30))}, "after-repair", dryRun=True))
        await wait_state(q, "after-repair", "completed")
        await eventually(lambda: status(200), timeout=15)


async def test_a_second_sigterm_kills_the_children_and_exits_at_once(
    settings: Settings, source_server: SourceServer, spawn_worker: Any
) -> None:
    slow = source_server.route("/sup/forced.jpg", body=media.jpeg(400, 300), delay=8.0)
    worker = spawn_worker(
        PREVIEW_WORKER_PROCESSES="2", PREVIEW_DRAIN_SECONDS="30", PREVIEW_URL_TIMEOUT_SECONDS="20"
    )
    pids = await ready_children(worker, 2)
    async with queues(settings) as q:
        await q.enqueue(payload({"url": slow}, "sup-forced"))
        await wait_state(q, "sup-forced", "active")
        await asyncio.sleep(0.5)  # as above: let the idle child reach its fetch loop
        worker.proc.send_signal(signal.SIGTERM)

        async def draining() -> bool:
            return any(e["msg"] == "consumer paused, draining" for e in worker.events())

        await eventually(draining)
        started = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        assert await wait_exit(worker, 5) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 2.0
    events = worker.events()
    forced = [e for e in events if e["msg"] == "second stop signal, exiting now"]
    assert [(e["signal"], e["status"]) for e in forced] == [("SIGTERM", 143)]
    assert not any(e["msg"] == "supervisor stopped" for e in events)

    async def children_gone() -> bool:
        return not any(alive(pid) for pid in pids)

    await eventually(children_gone, timeout=5)
