"""Helpers for queue tests: an in-process consumer, polling, and job payloads."""

from __future__ import annotations

import asyncio
import base64
import io
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from worker import jobs
from worker.consumer import Consumer
from worker.metrics import Metrics
from worker.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A real redis-server on a loopback port, with AOF persistence so it can be restarted."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (deps/apt-base.txt); the worker suite needs it")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--protected-mode",
            "no",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    client.close()
                    return
            except redis.exceptions.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start (exit {self.proc.poll()})")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop (data persisted in the AOF), stay down a while, start again on the same port."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decode_image(data: bytes) -> Any:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


T = TypeVar("T")
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
async def queues(settings: Settings) -> AsyncIterator[jobs.Queues]:
    q = jobs.Queues(settings, jobs.redis_client(settings.redis_url, patient=True))
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


async def state_of(q: jobs.Queues, job_id: str) -> str | None:
    job = await q.get(job_id)
    return None if job is None else str(await job.getState())


async def wait_state(q: jobs.Queues, job_id: str, state: str, timeout: float = 15.0) -> None:
    async def probe() -> bool:
        return await state_of(q, job_id) == state

    await eventually(probe, timeout)
