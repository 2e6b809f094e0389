"""Real processes and real signals: graceful drain, SIGKILL recovery, a Redis restart mid-run."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import worker_media as media
from worker_http import SourceServer
from worker_kit import RedisServer, b64, eventually, payload, queues, state_of, wait_state

from worker.settings import Settings


async def wait_proc(proc: Any, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while proc.proc.poll() is None:
        assert time.monotonic() < deadline, "process did not exit"
        await asyncio.sleep(0.05)
    return int(proc.proc.returncode)


async def logged(worker: Any, msg: str) -> bool:
    return any(e["msg"] == msg for e in worker.events())


async def test_sigterm_drains_the_job_in_flight_then_exits_0(
    settings: Settings, source_server: SourceServer, spawn_worker: Any
) -> None:
    slow = source_server.route("/life/slow.jpg", body=media.jpeg(400, 300), delay=1.5)
    worker = spawn_worker()
    async with queues(settings) as q:
        await q.enqueue(payload({"url": slow}, "drain-1"))
        await wait_state(q, "drain-1", "active")
        worker.proc.send_signal(signal.SIGTERM)
        await eventually(lambda: logged(worker, "consumer paused, draining"))
        await q.enqueue(payload({"url": slow}, "after-term"))  # must not be picked up any more
        assert await wait_proc(worker, 15) == 0
        assert await state_of(q, "drain-1") == "completed"
        assert await state_of(q, "after-term") == "waiting"
    events = worker.events()
    paused = [e for e in events if e["msg"] == "consumer paused, draining"]
    assert paused and paused[0]["inFlight"] == 1
    stopped = [e for e in events if e["msg"] == "worker stopped"]
    assert stopped and stopped[0]["drained"] is True
    (done,) = [e for e in events if e["msg"] == "job completed"]
    assert (done["jobId"], done["attempt"], done["outcome"]) == ("drain-1", 1, "completed")
    assert done["duration"] >= 1.5
    signals = [e["signal"] for e in events if e["msg"] == "stop signal received, draining"]
    assert signals == ["SIGTERM"]


async def test_sigint_with_a_short_grace_period_still_exits_0(
    settings: Settings, source_server: SourceServer, spawn_worker: Any
) -> None:
    slow = source_server.route("/life/slower.jpg", body=media.jpeg(40, 30), delay=4.0)
    worker = spawn_worker(PREVIEW_DRAIN_SECONDS="0.5", PREVIEW_URL_TIMEOUT_SECONDS="10")
    async with queues(settings) as q:
        await q.enqueue(payload({"url": slow}, "grace-1"))
        await wait_state(q, "grace-1", "active")
        started = time.monotonic()
        worker.proc.send_signal(signal.SIGINT)
        assert await wait_proc(worker, 10) == 0
        assert time.monotonic() - started < 3.0  # did not wait for the 4 s job
        stopped = [e for e in worker.events() if e["msg"] == "worker stopped"]
        assert stopped[0]["drained"] is False
        # The unfinished job is not lost: its lock expires and the next worker completes it.
        spawn_worker(PREVIEW_URL_TIMEOUT_SECONDS="10")
        await wait_state(q, "grace-1", "completed", timeout=30)


async def test_sigkill_mid_job_is_recovered_by_another_worker(
    settings: Settings, source_server: SourceServer, spawn_worker: Any
) -> None:
    slow = source_server.route("/life/killed.jpg", body=media.jpeg(400, 300), delay=1.5)
    first = spawn_worker(PREVIEW_WORKER_CONCURRENCY="1")
    async with queues(settings) as q:
        await q.enqueue(payload({"url": slow}, "kill-1"))
        await wait_state(q, "kill-1", "active")
        first.proc.send_signal(signal.SIGKILL)
        assert await wait_proc(first, 5) == -signal.SIGKILL
        second = spawn_worker()
        await wait_state(q, "kill-1", "completed", timeout=20)
        job = await q.get("kill-1")
        assert job is not None and job.failedReason is None
        assert (await q.counts())["failed"] == 0
    assert any(e["msg"] == "job completed" and e["jobId"] == "kill-1" for e in second.events())
    assert not any(e["msg"] == "job completed" for e in first.events())


async def test_redis_restart_mid_run_loses_nothing(
    settings: Settings, source_server: SourceServer, spawn_worker: Any, redis_server: RedisServer
) -> None:
    src = source_server.route("/life/steady.jpg", body=media.jpeg(200, 150), delay=0.3)
    worker = spawn_worker()
    before = [f"before-{i}" for i in range(6)]
    after = [f"after-{i}" for i in range(4)]
    async with queues(settings) as q:
        for job_id in before:
            await q.enqueue(payload({"url": src}, job_id))
        await wait_state(q, before[0], "completed")
        redis_server.restart(down_seconds=1.0)  # AOF persistence: queued jobs survive
        for job_id in after:
            await q.enqueue(payload({"url": src}, job_id))

        async def all_done() -> bool:
            states = [await state_of(q, j) for j in before + after]
            return all(s == "completed" for s in states)

        await eventually(all_done, timeout=60, every=0.2)
        counts = await q.counts()
        assert (counts["completed"], counts["failed"], counts["dlq"]) == (10, 0, 0)
    assert worker.proc.poll() is None  # the worker rode it out
    assert sorted(p.name for p in settings.data_dir.iterdir()) == sorted(before + after)


async def test_worker_without_redis_stays_up_not_ready_and_never_logs_the_password(
    spawn_worker: Any,
) -> None:
    import httpx
    from worker_kit import free_port

    dead = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    worker = spawn_worker(REDIS_URL=dead)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
    await asyncio.sleep(1.0)
    assert worker.proc.poll() is None
    worker.proc.send_signal(signal.SIGTERM)
    assert await wait_proc(worker, 15) == 0
    text = worker.logfile.read_text()
    assert "hunter2" not in text
    warnings = [e for e in worker.events() if e["msg"] == "housekeeping step failed"]
    assert warnings and warnings[0]["error"].startswith("ConnectionError: Error 111 connecting to 127.0.0.1")


async def test_sigterm_during_a_long_render_ends_when_the_drain_says_and_hands_the_job_back(
    settings: Settings, spawn_worker: Any
) -> None:
    # Issue 16, item 12: drain gave up at 25 s but the process exited at 40 s, when its render
    # thread ended. The render process is killed at the end of the grace instead.

    long_render = {"source": {"inline": b64(media.slow_pdf(60_000))},
                   "outputs": [{"name": "page", "format": "png", "width": 1200, "height": 1200}]}  # fmt: skip
    worker = spawn_worker(PREVIEW_DRAIN_SECONDS="0.5")
    async with queues(settings) as q:
        await q.enqueue({**long_render, "jobId": "long-1"})
        await wait_state(q, "long-1", "active")
        await asyncio.sleep(1.0)  # well into PDFium's seconds of work
        started = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        assert await wait_proc(worker, 10) == 0
        assert time.monotonic() - started < 3.5  # the 0.5 s grace, the hand-back, exit; not the render
        assert any(e["msg"] == "job handed back: render stopped by shutdown" for e in worker.events())
        job = await q.get("long-1")
        assert job is not None and job.attemptsMade == 0 and job.failedReason is None
        assert await state_of(q, "long-1") in ("delayed", "waiting")
        # Not lost and not charged an attempt: the next worker renders it to the end.
        spawn_worker()
        await wait_state(q, "long-1", "completed", timeout=90)
        assert (await q.counts())["dlq"] == 0


async def test_readiness_turns_red_while_the_worker_cannot_fetch_and_green_when_it_can(
    settings: Settings, spawn_worker: Any
) -> None:
    # Issue 16, item 1: with `bull:<queue>:wait` made a hash, every fetch answered WRONGTYPE
    # while /readyz stayed 200 (Redis itself answered PING).
    import httpx

    worker = spawn_worker(PREVIEW_RUN_RETRY_DELAY_MS="100")
    wait_key, marker = f"bull:{settings.queue_name}:wait", f"bull:{settings.queue_name}:marker"
    async with queues(settings) as q, httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}") as http:
        assert (await http.get("/readyz")).status_code == 200
        await q.client.hset(wait_key, "not", "a list")
        await q.client.zadd(marker, {"0": 0})  # wakes the fetcher, whose move-to-active now fails

        async def status() -> int:
            return (await http.get("/readyz")).status_code

        await eventually(lambda: _equals(status, 503), timeout=15)
        assert worker.proc.poll() is None  # not ready, still alive: liveness stays green
        assert (await http.get("/healthz")).status_code == 200
        await q.client.delete(wait_key)
        await q.enqueue(payload({"inline": b64(media.jpeg(40, 30))}, "after-repair", dryRun=True))
        await wait_state(q, "after-repair", "completed")
        await eventually(lambda: _equals(status, 200), timeout=15)
    errors = [e for e in worker.events() if e["msg"] == "bullmq error"]
    assert errors and "WRONGTYPE" in errors[0]["error"]


async def _equals(probe: Any, expected: int) -> bool:
    return bool(await probe() == expected)


async def test_a_second_signal_during_the_drain_exits_at_once_with_the_signal_status(
    settings: Settings, source_server: SourceServer, spawn_worker: Any
) -> None:
    # uvicorn's rule: the first SIGTERM/SIGINT drains, a second one ends the process now.
    slow = source_server.route("/life/forced.jpg", body=media.jpeg(400, 300), delay=8.0)
    worker = spawn_worker(PREVIEW_DRAIN_SECONDS="30", PREVIEW_URL_TIMEOUT_SECONDS="20")
    async with queues(settings) as q:
        await q.enqueue(payload({"url": slow}, "forced-1"))
        await wait_state(q, "forced-1", "active")
        worker.proc.send_signal(signal.SIGTERM)
        await eventually(lambda: logged(worker, "consumer paused, draining"))
        started = time.monotonic()
        worker.proc.send_signal(signal.SIGINT)
        assert await wait_proc(worker, 5) == 128 + signal.SIGINT
        assert time.monotonic() - started < 2.0  # neither the 30 s grace nor the 8 s fetch
        assert await state_of(q, "forced-1") == "active"  # its lock expires; another worker takes it
    events = worker.events()
    received = [e["signal"] for e in events if e["msg"] == "stop signal received, draining"]
    assert received == ["SIGTERM"]
    (forced,) = [e for e in events if e["msg"] == "second stop signal, exiting now"]
    assert (forced["signal"], forced["first"], forced["status"], forced["level"]) == (
        "SIGINT", "SIGTERM", 130, "warning"
    )  # fmt: skip
    assert not any(e["msg"] == "worker stopped" for e in events)
