"""Health answers within 100 ms whatever a request costs, and still tells when Redis is gone
(issue 30, item 2), against a real ``python -m worker api`` process and a real Redis.

Health used to ask Redis on every request, and a near-cap job held up both halves of that: its
checks held the GIL in the API's thread (a single JSON decode or regular expression over the
15 MiB inline string runs for tens of milliseconds), BullMQ encoded its JSON on the event loop,
and Redis itself, writing the job, made a ``PING`` on another connection wait up to 122 ms.
Health delayed 150 to 450 ms. Now large bodies are checked and encoded in a process of their
own (``worker/api/checking.py``), and health answers from a background check of Redis
(``worker/api/readiness.py``), which turns it red once Redis has not answered for
``PREVIEW_API_HEALTH_MAX_AGE_SECONDS``.

The probes come from a process of their own (``tests/worker/health_poller.py``), every 10 ms on
a fresh connection, as a kubelet's do.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from test_api_bounds import HEALTH, post, request
from worker_kit import AUTH, Api, RedisServer, consumer, payload, queues, running_api, wait_state

from mobius_preview_client.contract import validation
from worker import constants as c
from worker.settings import Settings

POLLER = Path(__file__).resolve().parents[1] / "health_poller.py"
#: The requirement: every health answer within this.
HEALTH_SECONDS = 0.1
INLINE_CAP = 12 * 2**20


@dataclass(frozen=True)
class Probe:
    """One health request, as ``health_poller.py`` saw it."""

    started: float
    took: float
    status: int
    error: str | None
    api_waited: float  # the API's event-loop thread, runnable but not running (the kernel's run queue)
    own_waited: float  # the poller, the same
    stolen: float  # the most steal time any CPU accrued meanwhile (the hypervisor ran something else)

    @property
    def delay(self) -> float:
        """The answer's time less what the machine added: the longer of the two run-queue delays,
        which is at most their union, plus the steal, during which a thread the guest counts as
        running does not run (seen at 15 % of a shared host's time). A loop blocked by the API's
        own work (its CPU, or the GIL held by another of its threads) is running or sleeping, not
        queued or stolen: that delay stays in full."""
        return self.took - max(self.api_waited, self.own_waited) - self.stolen


@asynccontextmanager
async def polled(api: Api) -> AsyncIterator[list[Probe]]:
    """Probes health while the block runs; the list is filled when it ends."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(POLLER), str(api.port), str(api.proc.pid),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    probes: list[Probe] = []
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"polling\n"
        yield probes
    finally:
        proc.stdin.close()  # it stops
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    probes.extend(Probe(*fields) for fields in json.loads(out))


def summary(probes: list[Probe]) -> str:
    took = sorted(p.took for p in probes)
    p99 = took[len(took) * 99 // 100]
    return (
        f"{len(probes)} probes: slowest {took[-1] * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"most the machine does not explain {max(p.delay for p in probes) * 1000:.0f} ms "
        f"(steal up to {max(p.stolen for p in probes) * 1000:.0f} ms in a probe)"
    )


def noise_png(side: int = 1950) -> bytes:
    """A PNG of random pixels: about ``3 * side**2`` bytes that no compression shrinks."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(3 * side * side)).save(out, "PNG", compress_level=1)
    return out.getvalue()


def status_of(job_id: str) -> bytes:
    token = AUTH["Authorization"]
    path = f"/api/preview/job/{job_id}/status"
    return f"GET {path} HTTP/1.1\r\nHost: api\r\nAuthorization: {token}\r\n\r\n".encode()


async def posted(port: int, body: bytes) -> tuple[float, float, int, bytes]:
    started = time.monotonic()
    status, answer, took = await request(port, post(body), body, timeout=120)
    return started, started + took, status, answer


async def test_health_answers_within_100_ms_while_near_cap_jobs_are_enqueued(
    worker_env: dict[str, str], settings: Settings
) -> None:
    inline = base64.b64encode(noise_png()).decode()
    sent = [payload({"inline": inline}, f"near-cap-{i}") for i in range(6)]
    bodies = [json.dumps(job).encode() for job in sent]
    assert all(14 * 2**20 < len(body) < c.API_MAX_BODY_BYTES_DEFAULT for body in bodies)
    env = {
        **worker_env,
        c.ENV_MAX_INLINE_BYTES: str(INLINE_CAP),
        c.ENV_API_BODY_BUDGET_BYTES: str(3 * c.API_MAX_BODY_BYTES_DEFAULT),  # three bodies at once
    }
    async with running_api(env) as api:
        assert (await request(api.port, HEALTH))[0] == 200
        async with polled(api) as probes:
            posts = [await posted(api.port, body) for body in bodies[:3]]  # one after the other
            posts += await asyncio.gather(*(posted(api.port, body) for body in bodies[3:]))  # at once
            statuses = []  # a near-cap job's status is read without its data
            for job in sent:
                started = time.monotonic()
                status, answer, took = await request(api.port, status_of(job["jobId"]))
                statuses.append((started, started + took, status, answer))
    for (_, _, status, answer), job in zip(posts, sent, strict=True):
        assert (status, json.loads(answer)) == (201, {"jobId": job["jobId"], "created": True})
    for (_, _, status, answer), job in zip(statuses, sent, strict=True):
        assert status == 200 and json.loads(answer)["jobId"] == job["jobId"], (status, answer)
    begun, ended = min(p[0] for p in posts), max(p[1] for p in [*posts, *statuses])
    during = [p for p in probes if begun <= p.started <= ended]
    # The probes cover every body, from its first byte to its answer (its checks, its write).
    assert all(sum(s <= p.started <= e for p in during) >= 3 for s, e, _, _ in posts), (
        posts,
        summary(during),
    )
    assert {p.status for p in during} == {200}, summary(during)
    print(summary(during))
    assert max(p.delay for p in during) <= HEALTH_SECONDS, summary(during)

    # Each job went to Redis whole: read back through the worker's JSON gate, valid, and rendered.
    roomy = settings.model_copy(update={"max_inline_bytes": INLINE_CAP})
    async with queues(roomy) as q:
        for job in sent:
            stored = await q.get(job["jobId"])
            assert stored is not None and stored.data == job
            assert validation.validate(stored.data, INLINE_CAP) == job
        async with consumer(roomy):
            for job in sent:
                await wait_state(q, job["jobId"], "completed", timeout=120)
        done = await q.get(sent[-1]["jobId"])
        assert done is not None and done.returnvalue == {"outcome": "completed", "renditions": 2}


async def test_health_stays_fast_and_turns_red_once_redis_has_not_answered_for_its_max_age(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    own = RedisServer(tmp_path)  # this test stops it
    own.start()
    max_age = 1.0
    env = {**worker_env, "REDIS_URL": own.url, c.ENV_API_HEALTH_MAX_AGE_SECONDS: str(max_age)}
    assert own.proc is not None
    try:
        async with running_api(env) as api, polled(api) as probes:
            await asyncio.sleep(0.5)
            own.proc.send_signal(signal.SIGSTOP)  # frozen: connections open, nothing answered
            frozen = time.monotonic()
            await asyncio.sleep(2 * max_age)
            own.proc.send_signal(signal.SIGCONT)
            thawed = time.monotonic()
            await asyncio.sleep(1.5 * max_age)
            stopping = time.monotonic()
            own.stop()  # gone: connections refused
            stopped = time.monotonic()
            await asyncio.sleep(1.5 * max_age)
    finally:
        own.proc.send_signal(signal.SIGCONT)
        own.stop()
    # No answer waits for Redis, frozen or not.
    assert max(p.delay for p in probes) <= HEALTH_SECONDS, summary(probes)
    interval = max_age / 4  # between two checks: RedisWatch checks every quarter of the max age

    def seen(since: float, until: float) -> set[tuple[int, str | None]]:
        return {(p.status, p.error) for p in probes if since <= p.started and p.started + p.took <= until}

    # Healthy until the last answer before the freeze is max_age old (it came at most one
    # interval, plus the check's own time, before it), red from then on with the reason.
    changed = [p for i, p in enumerate(probes) if i == 0 or p.error != probes[i - 1].error]
    timeline = [(round(p.started - frozen, 2), p.status, p.error) for p in changed]  # from the freeze
    assert seen(0, frozen + max_age - interval - 0.1) == {(200, None)}, timeline
    assert seen(frozen + max_age + 0.1, thawed) == {(503, "TimeoutError")}, timeline
    # Answered again soon after the thaw (the check in flight, or the next); refused at once when
    # Redis is gone (allowing for a busy machine's scheduling).
    assert seen(thawed + interval + 0.6, stopping) == {(200, None)}, timeline
    assert seen(stopped + interval + 0.6, float("inf")) == {(503, "ConnectionError")}, timeline


def stat(pid: int | str) -> list[str]:
    """``/proc/PID/stat``'s fields (a python's name has no space); empty once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()
    except FileNotFoundError:
        return []


def checking_process(api: Api) -> int:
    """The pid of the API's live checking process (not ``multiprocessing``'s resource tracker)."""
    children = Path(f"/proc/{api.proc.pid}/task/{api.proc.pid}/children").read_text().split()
    alive = [pid for pid in children if stat(pid)[2:3] not in ([], ["Z"])]
    found = [
        int(pid) for pid in alive if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(found) == 1, found
    return found[0]


async def test_a_killed_checking_process_is_replaced_and_dies_with_the_api(
    worker_env: dict[str, str],
) -> None:
    inline = base64.b64encode(os.urandom(2**20)).decode()  # a 1.4 MiB body: checked in the process
    bodies = [json.dumps(payload({"inline": inline}, f"checked-{i}")).encode() for i in range(2)]
    async with running_api({**worker_env, c.ENV_MAX_INLINE_BYTES: str(INLINE_CAP)}) as api:
        assert (await request(api.port, post(bodies[0]), bodies[0]))[0] == 201
        first = checking_process(api)
        assert stat(first)[18] == "10"  # its nice value: the kernel runs the API's loop first
        os.kill(first, signal.SIGKILL)
        await asyncio.sleep(0.5)
        assert (await request(api.port, post(bodies[1]), bodies[1]))[0] == 201  # in a new process
        second = checking_process(api)
        assert second != first
        api.proc.kill()  # the kernel ends the checking process with it (PR_SET_PDEATHSIG)
        await api.proc.wait()
        await asyncio.sleep(1.0)
        assert stat(second)[2:3] in ([], ["Z"]), stat(second)
