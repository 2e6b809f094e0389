"""``python -m worker api`` and its stop signals, as a real process: a request in flight is finished
after the first SIGTERM, and a second one ends the process at once (``worker/process/signals.py``)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

from worker_kit import AUTH, running_api

REPO = Path(__file__).resolve().parents[3]
BODY = json.dumps({"source": {"url": "https://example.invalid/a.jpg"}, "outputs": []}).encode()


async def half_sent_request(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An enqueue whose body is half sent: a request in flight for as long as the test wants."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /api/preview/job HTTP/1.1\r\nHost: api\r\nAuthorization: {AUTH['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    )
    writer.write(head.encode() + BODY[:10])
    await writer.drain()
    await asyncio.sleep(0.3)  # the server has read the head: the request is in flight
    return reader, writer


async def test_the_first_sigterm_finishes_the_request_in_flight_and_exits_0(
    worker_env: dict[str, str],
) -> None:
    async with running_api(worker_env) as api:
        reader, writer = await half_sent_request(api.port)
        api.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        assert api.proc.returncode is None  # waiting for the request, not gone
        writer.write(BODY[10:])
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert status_line.startswith(b"HTTP/1.1 400 ")  # answered (an empty outputs list is invalid)
        writer.close()
        assert await api.exit_status(15) == 0
    received = [e["signal"] for e in api.events() if e["msg"] == "stop signal received, draining"]
    assert received == ["SIGTERM"]


async def test_a_second_sigterm_exits_at_once_with_143(worker_env: dict[str, str]) -> None:
    async with running_api(worker_env) as api:
        _, writer = await half_sent_request(api.port)
        api.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        assert api.proc.returncode is None
        started = time.monotonic()
        api.proc.send_signal(signal.SIGTERM)
        assert await api.exit_status(5) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 2.0
        writer.close()
    (forced,) = [e for e in api.events() if e["msg"] == "second stop signal, exiting now"]
    assert (forced["signal"], forced["first"], forced["status"]) == ("SIGTERM", "SIGTERM", 143)
