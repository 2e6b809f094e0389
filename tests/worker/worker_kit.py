"""Helpers for queue tests: an in-process consumer, a real `python -m worker api`, polling, payloads.

``RedisServer`` and ``free_port`` live in ``tests/servers.py`` (shared with other suites).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette

from tests.servers import RedisServer, free_port
from worker.consumer import Consumer
from worker.metrics import Metrics
from worker.queue.queues import Queues, redis_client
from worker.settings import Settings


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decode_image(data: bytes) -> Any:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


T = TypeVar("T")
#: The job API's bearer token in the worker suite (PREVIEW_API_TOKENS of ``worker_env``).
TEST_TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}
OUTPUTS = [
    {"name": "thumb", "format": "webp", "width": 320, "height": 320},
    {"name": "card", "format": "jpeg", "width": 200, "height": 100, "fit": "cover"},
]


def payload(source: dict[str, Any], job_id: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"source": source, "outputs": OUTPUTS, **extra}
    if job_id:
        body["jobId"] = job_id
    return body


async def eventually(probe: Callable[[], Awaitable[T]], timeout: float = 15.0, every: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy; fail with its last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(every)


@asynccontextmanager
async def queues(settings: Settings) -> AsyncIterator[Queues]:
    q = Queues(settings, redis_client(settings.redis_url, patient=True))
    try:
        yield q
    finally:
        await q.close()


@asynccontextmanager
async def consumer(settings: Settings) -> AsyncIterator[Consumer]:
    """A real ``bullmq.Worker`` consuming in this event loop."""
    c = Consumer(settings, Metrics(settings.track))
    c.start()
    try:
        yield c
    finally:
        await c.stop(10)


async def state_of(q: Queues, job_id: str) -> str | None:
    job = await q.get(job_id)
    return None if job is None else str(await job.getState())


async def wait_state(q: Queues, job_id: str, state: str, timeout: float = 15.0) -> None:
    async def probe() -> bool:
        return await state_of(q, job_id) == state

    await eventually(probe, timeout)


@asynccontextmanager
async def served(app: Starlette, headers: dict[str, str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the job API ``app`` in this process, with the app's lifespan run as a
    server runs it (the health route's Redis watch started; the Redis client closed at the end)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as client:
            yield client


__all__ = ["RedisServer", "free_port"]  # re-exported: the worker suite imports them from here


REPO = Path(__file__).resolve().parents[2]


class Api:
    """A ``python -m worker api`` process and its merged output."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port, self.out = proc, port, b""

    async def exit_status(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        self.out += await asyncio.wait_for(self.proc.stdout.read(), timeout)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.decode().splitlines() if line.startswith("{")]


@asynccontextmanager
async def running_api(worker_env: dict[str, str]) -> AsyncIterator[Api]:
    port = free_port()
    env = {**os.environ, **worker_env, "PREVIEW_API_HOST": "127.0.0.1", "PREVIEW_API_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", "api", env=env, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    api = Api(proc, port)

    async def listening() -> bool:
        assert proc.returncode is None, "the API exited before it listened"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    try:
        await eventually(listening, timeout=60)  # a cold interpreter on a loaded 2-core machine
        yield api
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
