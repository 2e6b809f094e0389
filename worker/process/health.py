"""The worker process's own HTTP endpoints: ``/healthz``, ``/readyz`` and ``/metrics``.

A deliberately tiny HTTP/1.0 server on asyncio, so probes and scrapes keep
answering while jobs render and it shares nothing with the job API.
``python -m worker health`` uses :func:`probe` as a Kubernetes exec probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker import constants as c
from worker.metrics import Metrics

ReadyCheck = Callable[[], Awaitable[bool]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    """Serves liveness, readiness (Redis reachable) and metrics on one port."""

    def __init__(self, metrics: Metrics, ready: ReadyCheck, host: str, port: int) -> None:
        self.metrics = metrics
        self.ready = ready
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Start listening; returns the bound port (useful when ``port`` is 0)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            method, path = request.split(b" ", 2)[:2]
            status, ctype, body = await self._route(method.decode(), path.decode().split("?", 1)[0])
            head = f"HTTP/1.0 {status} {_REASONS[status]}\r\nContent-Type: {ctype}\r\n"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method != "GET":
            return 405, "text/plain", b"method not allowed\n"
        if path == c.LIVENESS_PATH:
            return 200, "application/json", b'{"status":"ok"}\n'
        if path == c.READINESS_PATH:
            try:
                ok = await asyncio.wait_for(self.ready(), timeout=3)
            except Exception:
                ok = False
            body = json.dumps({"status": "ready" if ok else "not ready", "redis": ok}).encode() + b"\n"
            return (200 if ok else 503), "application/json", body
        if path == c.METRICS_PATH:
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
        return 404, "text/plain", b"not found\n"


def probe(port: int, path: str = c.READINESS_PATH, timeout: float = 3.0, host: str = "0.0.0.0") -> bool:
    """True if the worker on ``port`` answers 200 on ``path`` (for ``python -m worker health``).

    ``host`` is the address the server binds (``PREVIEW_METRICS_HOST``): a wildcard is asked on
    its family's loopback (asyncio binds ``::`` to IPv6 only).
    """
    address = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    named = f"[{address}]" if ":" in address else address
    try:
        with urllib.request.urlopen(f"http://{named}:{port}{path}", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
