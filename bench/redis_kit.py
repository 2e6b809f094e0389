"""A throwaway redis-server for the benchmark, and a fast queue filler."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from types import TracebackType
from typing import Any

import redis

from worker import constants as c


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class BenchRedis:
    """``redis-server`` on a loopback port, no persistence (like a cache-only Redis)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (deps/apt-base.txt)")
        self.dir = tempfile.TemporaryDirectory(prefix="bench-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.dir.name,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.client = client

    def __enter__(self) -> BenchRedis:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(10)
        self.dir.cleanup()

    def fill(self, queue: str, count: int, data: dict[str, Any] | None = None) -> None:
        """Pre-fill ``queue`` with ``count`` jobs, exactly as a BullMQ producer would."""
        import asyncio

        from bullmq import Queue

        async def add() -> None:
            q = Queue(queue, {"connection": self.url, "prefix": c.BULL_PREFIX})
            try:
                for start in range(0, count, 1000):
                    n = min(1000, count - start)
                    await q.addBulk([{"name": "noop", "data": data or {"i": start + i}} for i in range(n)])
            finally:
                await q.close()

        asyncio.run(add())

    def fill_jobs(self, queue: str, jobs: list[tuple[dict[str, Any], str]]) -> None:
        """Pre-fill ``queue`` with ``(data, jobId)`` jobs named ``preview``, as the job API adds them."""
        import asyncio

        from bullmq import Queue

        async def add() -> None:
            q = Queue(queue, {"connection": self.url, "prefix": c.BULL_PREFIX})
            try:
                for start in range(0, len(jobs), 1000):
                    await q.addBulk([
                        {"name": c.JOB_NAME, "data": data, "opts": {"jobId": job_id}}
                        for data, job_id in jobs[start : start + 1000]
                    ])  # fmt: skip
            finally:
                await q.close()

        asyncio.run(add())
