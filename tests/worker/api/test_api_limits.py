"""Request bodies the job API refuses before they cost memory: too large (413), not JSON (415).

#16 item 6: three 100 MB bodies at once took the API to 733 MB RSS. Against a real
``python -m worker api`` process and a real Redis, big bodies now answer 413 and the
process's resident memory stays near where it started.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from api_kit import JOB, api
from worker_kit import TEST_TOKEN, free_port

from worker import constants as c
from worker.settings import Settings

REPO = Path(__file__).resolve().parents[3]
SMALL = 4096


async def redis_keys(settings: Settings) -> list[str]:
    from worker.queue.queues import redis_client

    client = redis_client(settings.redis_url)
    try:
        found: list[str] = await client.keys(f"bull:{settings.queue_name}:*")
        return found
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "kind", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
async def test_a_body_that_is_not_json_by_type_is_415(settings: Settings, kind: str) -> None:
    async with api(settings) as client:
        headers = {"Content-Type": kind} if kind else {}
        reply = await client.post("/api/preview/job", content=b'{"a": 1}', headers=headers)
        assert (reply.status_code, reply.json()) == (415, {"error": "Content-Type must be application/json"})
    assert await redis_keys(settings) == []


async def test_json_with_a_charset_is_accepted(settings: Settings) -> None:
    async with api(settings) as client:
        import json

        headers = {"Content-Type": "application/json; charset=utf-8"}
        reply = await client.post("/api/preview/job", content=json.dumps(JOB).encode(), headers=headers)
        assert reply.status_code == 201


async def test_over_the_limit_by_length_or_while_streaming_is_413(settings: Settings) -> None:
    small = settings.model_copy(update={"api_max_body_bytes": SMALL})
    body = b'{"pad": "' + b"x" * SMALL + b'"}'

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    async with api(small) as client:
        json_type = {"Content-Type": "application/json"}
        for content in (body, chunks()):
            reply = await client.post("/api/preview/job", content=content, headers=json_type)
            assert (reply.status_code, reply.json()) == (413, {"error": f"request body over {SMALL} bytes"})
        under = await client.post("/api/preview/job", content=b'{"pad": 1}', headers=json_type)
        assert under.status_code == 400  # read, parsed, and refused on its merits
    assert await redis_keys(settings) == []


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def send_big(port: int, size: int, chunked: bool) -> int:
    """Stream up to ``size`` bytes of body; the status the API answers (0: it reset the connection).

    A server that refuses a body it has not read closes the connection with bytes unread, and
    TCP may then reset it before the client reads the 413: for a streamed body that counts as
    refused too (the process's memory and health are what the test measures).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = (
        f"POST /api/preview/job HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {TEST_TOKEN}\r\n{framing}\r\n\r\n"
    )
    writer.write(head.encode())
    response = asyncio.ensure_future(reader.readline())
    await asyncio.wait([response], timeout=0.5)  # a declared length over the limit is refused at once
    block, sent = b"x" * 2**20, 0
    try:
        while sent < size and not response.done():
            writer.write(f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block)
            await writer.drain()
            sent += len(block)
        status_line = await asyncio.wait_for(response, 30)
    except ConnectionError:
        return 0
    finally:
        writer.close()
    return int(status_line.split()[1]) if status_line else 0


async def test_three_100_mb_bodies_at_once_leave_the_api_process_small(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, **worker_env, c.ENV_API_HOST: "127.0.0.1", c.ENV_API_PORT: str(port)}
    with (tmp_path / "api.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "api"], cwd=REPO, env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}{c.API_HEALTH_PATH}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "api.log").read_text()
            await asyncio.sleep(0.2)
        before = rss_kib(proc.pid)
        declared = await asyncio.gather(*(send_big(port, 100 * 2**20, chunked=False) for _ in range(3)))
        assert declared == [413, 413, 413]
        streamed = await asyncio.gather(*(send_big(port, 100 * 2**20, chunked=True) for _ in range(3)))
        # 413 once a body passes the cap; 503 while the others' bytes fill the process's body budget
        # (chunked bodies are counted as they arrive); 0: closed before the answer could be read.
        assert set(streamed) <= {413, 503, 0}, streamed
        assert httpx.get(f"http://127.0.0.1:{port}{c.API_HEALTH_PATH}", timeout=5).status_code == 200
        grown_mib = (rss_kib(proc.pid) - before) / 1024
        # Three bodies read up to the 16 MiB limit at most; 100 MB each would be hundreds of MiB.
        assert grown_mib < 3 * c.API_MAX_BODY_BYTES_DEFAULT / 2**20 + 30, f"RSS grew {grown_mib:.0f} MiB"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
