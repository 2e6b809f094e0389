"""The job API's CPU, connections and memory are bounded (issue 30, item 2), against a real
``python -m worker api`` process on real sockets and a real Redis.

- CPU: a 14 MiB body of 1.2 M metadata keys, and one of 250 k outputs, took 59 s and 40 s to
  refuse, the event loop blocked throughout. Both now get 400 within a second, refused while
  they stream in, and health answers within 100 ms all the while.
- Connections: slow-loris heads and bodies short of their length are closed at their
  deadlines (408 for a partial head or body), and past the connection limit a new connection
  closes the idlest one, so health still gets in; with every connection busy it gets 503.
- Memory: twelve 15 MiB bodies at once leave the process's peak RSS where one does: past the
  body budget, 503 with ``Retry-After`` before a byte is read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from worker_kit import AUTH, OUTPUTS, Api, running_api

from mobius_preview_client.contract import validation
from worker import constants as c
from worker.api import bodies
from worker.api.app import create_app
from worker.settings import Settings

HEALTH = f"GET {c.API_HEALTH_PATH} HTTP/1.1\r\nHost: api\r\n\r\n".encode()


async def answer_of(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and body of one answer (status 0: the connection closed without one)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return 0, b""
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
    body = await reader.readexactly(int(fields.get(b"content-length", b"0")))
    return int(head.split(b" ", 2)[1]), body


async def request(port: int, head: bytes, body: bytes = b"", timeout: float = 30) -> tuple[int, bytes, float]:
    """Send ``head`` and ``body`` (as much as the server reads) on a new connection: the status, the
    answer's body and the seconds it took (status 0: closed without an answer)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        answer = asyncio.ensure_future(answer_of(reader))
        for at in range(0, len(body), 2**16):
            if answer.done():
                break
            writer.write(body[at : at + 2**16])
            try:
                await writer.drain()
            except ConnectionError:
                break
            if at == 0:  # a body refused by its first bytes is answered now: read it before a reset
                await asyncio.wait([answer], timeout=0.5)
        status, raw = await asyncio.wait_for(answer, timeout)
    finally:
        writer.close()
    return status, raw, time.monotonic() - started


def post(body: bytes, length: int | None = None, auth: bool = True) -> bytes:
    token = f"Authorization: {AUTH['Authorization']}\r\n" if auth else ""
    return (
        f"POST /api/preview/job HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n{token}"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    ).encode()


class HealthWatch:
    """Asks for health every 20 ms on a fresh connection while it runs; the slowest answer."""

    def __init__(self, port: int) -> None:
        self.port, self.slowest, self.statuses = port, 0.0, set[int]()

    async def run(self) -> None:
        while True:
            status, _, took = await request(self.port, HEALTH)
            self.statuses.add(status)
            self.slowest = max(self.slowest, took)
            await asyncio.sleep(0.02)


@asynccontextmanager
async def health_watched(port: int) -> AsyncIterator[HealthWatch]:
    watch = HealthWatch(port)
    await request(port, HEALTH)  # the first answer (imports, Redis connection) is not the measure
    task = asyncio.ensure_future(watch.run())
    try:
        yield watch
    finally:
        task.cancel()


def roomy(worker_env: dict[str, str]) -> dict[str, str]:
    """An inline cap large enough that 16 MiB bodies are worth reading (else they are 413 at once)."""
    return {**worker_env, c.ENV_MAX_INLINE_BYTES: str(12 * 2**20)}


def compact(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def job(**extra: object) -> dict[str, object]:
    return {"source": {"url": "https://h.example/a.jpg"}, "outputs": OUTPUTS, **extra}


async def test_hostile_bodies_get_400_at_once_and_health_stays_fast(worker_env: dict[str, str]) -> None:
    many_keys = compact(job(metadata={f"k{i}": 1 for i in range(1_200_000)}))
    many_outputs = compact(job(outputs=[{**OUTPUTS[0], "name": f"o{i}"} for i in range(250_000)]))
    assert 13 * 2**20 < len(many_keys) < c.API_MAX_BODY_BYTES_DEFAULT, len(many_keys)
    assert 13 * 2**20 < len(many_outputs) < c.API_MAX_BODY_BYTES_DEFAULT, len(many_outputs)
    # A busy machine (the end-to-end half runs beside this suite) can hold one probe past 100 ms
    # for reasons of its own; a blocked event loop delays every round by seconds. Best of 3 rounds.
    rounds: list[tuple[set[int], float]] = []
    async with running_api(roomy(worker_env)) as api:
        while len(rounds) < 3 and not any(slowest < 0.1 for _, slowest in rounds):
            async with health_watched(api.port) as health:
                for body in (many_keys, many_outputs):
                    status, answer, took = await request(api.port, post(body), body)
                    assert status == 400 and took < 1.0, (status, answer, took)
                    (violation,) = json.loads(answer)["violations"]
                    assert violation["path"] == "$" and "more than 462 JSON tokens" in violation["message"]
                await asyncio.sleep(0.2)
            rounds.append((health.statuses, health.slowest))
    assert all(statuses == {200} for statuses, _ in rounds), rounds
    assert min(slowest for _, slowest in rounds) < 0.1, rounds


async def test_slow_heads_and_short_bodies_are_closed_at_their_deadlines(worker_env: dict[str, str]) -> None:
    env = {**worker_env, c.ENV_API_HEADER_TIMEOUT_SECONDS: "1", c.ENV_API_BODY_TIMEOUT_SECONDS: "1.5"}
    async with running_api(env) as api:
        slow_head = request(api.port, b"GET /api/preview/worker/health HTTP/1.1\r\nHost: a\r\n", timeout=5)
        silent = request(api.port, b"", timeout=5)
        short_body = request(api.port, post(b"x" * 1000)[:-2] + b"\r\n\r\n" + b'{"sou', timeout=5)
        short_body_401 = request(api.port, post(b"x" * 1000, auth=False) + b'{"sou', timeout=5)
        results = await asyncio.gather(slow_head, silent, short_body, short_body_401)
    (head_status, head_answer, head_took), (silent_status, _, silent_took) = results[:2]
    # Two processes' clocks and timers: the server's 1 s timer was once seen to close the connection
    # 0.13 ms before the client's clock showed a full second, so the lower bounds allow 50 ms.
    assert head_status == 408 and 0.95 <= head_took < 2.5, results[0]
    assert json.loads(head_answer) == {"error": "request head not received within 1 s"}
    assert silent_status == 0 and 0.95 <= silent_took < 2.5, results[1]  # closed without a word
    (body_status, body_answer, body_took), (unauth_status, _, _) = results[2:]
    assert body_status == 408 and 1.45 <= body_took < 3.0, results[2]
    assert json.loads(body_answer) == {"error": "request body not received within 1.5 s"}
    assert unauth_status == 401  # answered at once; its connection then closes at the deadline


async def test_a_request_stuck_mid_body_cannot_hold_the_shutdown(worker_env: dict[str, str]) -> None:
    """On SIGTERM uvicorn waits for requests in flight, but only ``API_SHUTDOWN_SECONDS``: a body
    that stopped arriving (its deadline set far past the pod's grace) is cancelled, the app's
    shutdown runs and the process exits before the kubelet's SIGKILL would come."""
    env = {**worker_env, c.ENV_API_BODY_TIMEOUT_SECONDS: "600"}
    async with running_api(env) as api:
        _, writer = await asyncio.open_connection("127.0.0.1", api.port)
        writer.write(post(b"x" * 1000) + b'{"sou')  # the head and 5 of its 1000 bytes
        await writer.drain()
        await asyncio.sleep(0.5)  # the request is in flight
        started = time.monotonic()
        api.proc.terminate()
        status = await api.exit_status(c.API_SHUTDOWN_SECONDS + 15)
        took = time.monotonic() - started
        writer.close()
    assert status == 0, api.out.decode()[-2000:]
    assert c.API_SHUTDOWN_SECONDS - 1 <= took < c.API_GRACE_SECONDS, took
    assert any(e.get("msg") == "Application shutdown complete." for e in api.events()), api.out[-2000:]


async def open_slow_heads(api: Api, count: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", api.port)
        writer.write(b"GET /api/preview/worker/health HTTP/1.1\r\nHost: a\r\n")
        writers.append(writer)
    await asyncio.sleep(0.3)
    return writers


async def test_slow_loris_past_the_limit_never_keeps_health_out(worker_env: dict[str, str]) -> None:
    env = {**worker_env, c.ENV_API_MAX_CONNECTIONS: "50", c.ENV_API_HEADER_TIMEOUT_SECONDS: "3"}
    async with running_api(env) as api:
        await request(api.port, HEALTH)
        writers = await open_slow_heads(api, 500)
        async with health_watched(api.port) as health:
            await asyncio.sleep(1.0)
        assert health.statuses == {200} and health.slowest < 0.5, (health.statuses, health.slowest)
        open_fds = len(list(Path(f"/proc/{api.proc.pid}/fd").iterdir()))
        assert open_fds < 50 + 30, open_fds  # the limit holds: 500 connections never were open at once
        for writer in writers:
            writer.close()


async def test_with_every_connection_busy_a_new_one_gets_503(worker_env: dict[str, str]) -> None:
    env = {**worker_env, c.ENV_API_MAX_CONNECTIONS: "8", c.ENV_API_BODY_TIMEOUT_SECONDS: "30"}
    async with running_api(env) as api:
        busy = []
        for _ in range(8):  # each in the middle of its body: a request in progress
            _, writer = await asyncio.open_connection("127.0.0.1", api.port)
            writer.write(post(b"x" * 1000) + b'{"sou')
            busy.append(writer)
        await asyncio.sleep(0.5)
        status, answer, _ = await request(api.port, HEALTH)
        assert (status, json.loads(answer)) == (503, {"error": "too many connections; retry shortly"})
        for writer in busy:
            writer.close()
        await asyncio.sleep(0.5)
        assert (await request(api.port, HEALTH))[0] == 200


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_twelve_15_mib_bodies_at_once_cost_what_one_does(worker_env: dict[str, str]) -> None:
    inline = "A" * (15 * 2**20 // 4 * 4)
    body = json.dumps(job(source={"inline": inline}, metadata={"n": 0})).encode()
    async with running_api(roomy(worker_env)) as api:
        await request(api.port, HEALTH)
        base = peak_rss_mib(api.proc.pid)
        answers = await asyncio.gather(*(request(api.port, post(body), body) for _ in range(12)))
        statuses = sorted(status for status, _, _ in answers)
        grown = peak_rss_mib(api.proc.pid) - base
    assert 201 in statuses and set(statuses) <= {201, 503}, statuses
    refused = [json.loads(a) for s, a, _ in answers if s == 503]
    assert refused and all(
        r == {"error": "too many request bodies in flight; retry shortly"} for r in refused
    )
    # One body's worth at a time (the issue measured 302 MB at N=12, 131 MB at N=1).
    budget = c.API_MAX_BODY_BYTES_DEFAULT / 2**20
    assert grown < c.API_BODY_MEMORY_FACTOR * budget, f"peak RSS grew {grown:.0f} MiB"


async def test_a_spent_budget_says_when_to_retry_and_a_body_no_job_fits_is_413(settings: Settings) -> None:
    small = settings.model_copy(update={"api_max_body_bytes": 2**20, "max_inline_bytes": 1024})
    app = create_app(small)
    app.state.api.body_budget.held = app.state.api.body_budget.total - 100  # other bodies in flight
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH) as client:
            spent = await client.post("/api/preview/job", json=job())
            assert spent.status_code == 503 and spent.headers["retry-after"] == bodies.RETRY_AFTER
            app.state.api.body_budget.held = 0
            assert (await client.post("/api/preview/job", json=job())).status_code == 201
            # 1 MiB bodies are allowed, but no job with at most 1 KiB inline is larger than its
            # base64 plus 64 KiB: that smaller cap is the one in force.
            limit = validation.max_payload_bytes(1024)
            assert limit < 2**20
            big = await client.post("/api/preview/job", json=job(metadata={"a": "x" * limit}))
            assert big.json() == {"error": f"request body over {limit} bytes"}
        assert app.state.api.body_budget.held == 0  # every byte taken was given back
    finally:
        await app.state.queues.close()
