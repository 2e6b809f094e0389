"""The job API's HTTP server: uvicorn (h11), with the deadlines and the connection limit it lacks.

uvicorn times out only an idle keep-alive connection, and only after a first answer: a client
that sends its request head, or its body, slowly or never holds a connection for ever (500
slow-loris connections stayed open; a POST short of its ``Content-Length`` was held past 60 s).
:class:`GuardedH11` adds, per connection:

- a **head deadline** (``PREVIEW_API_HEADER_TIMEOUT_SECONDS``): from the connection, or the last
  answer, to a complete request head. Past it, a connection that sent part of a head gets 408;
  one that sent nothing is closed without a word (a client may have pooled it);
- a **body deadline** (``PREVIEW_API_BODY_TIMEOUT_SECONDS``): from the head to the body's last
  byte. Past it: 408 if no answer has started, and the connection is closed either way;
- a **connection limit** (``PREVIEW_API_MAX_CONNECTIONS``): a connection past it closes the
  oldest one that has no request in progress (waiting for a head, or for a body already
  answered); if every one has, the new one gets 503. So slow-loris connections never keep a
  probe out: health and ``/metrics`` get in at the expense of the idlest connection.

A head is at most ``constants.API_MAX_HEAD_BYTES`` (h11 answers 400 past it), and an idle
keep-alive connection closes after ``PREVIEW_API_KEEP_ALIVE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from worker import constants as c
from worker.settings import Settings

HEAD, BODY, APP = "head", "body", "app"


class _Watched(h11.Connection):
    """h11's connection, telling its protocol each event it parses."""

    def __init__(self, max_head: int, seen: Callable[[Any], None]) -> None:
        super().__init__(h11.SERVER, max_head)
        self._seen = seen

    def next_event(self) -> Any:
        event = super().next_event()
        self._seen(event)
        return event


def _raw(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with the deadlines and limit of the module doc (class attributes
    set by :func:`protocol` from the settings)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 256

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _Watched(c.API_MAX_HEAD_BYTES, self._seen)
        self.phase, self._partial, self._since = HEAD, False, 0.0
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        if len(self.connections) > self.max_connections:
            idle = [p for p in self.connections if isinstance(p, GuardedH11) and p is not self and p.idle]
            if idle:
                min(idle, key=lambda p: p._since)._evict()
            else:
                self.transport.write(_raw(503, "Service Unavailable", "too many connections; retry shortly"))
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.phase == HEAD and data:
            self._partial = True
        super().data_received(data)

    def on_response_complete(self) -> None:
        if self.phase == APP:
            self._await_head()  # before uvicorn parses a pipelined request, which starts a body
        super().on_response_complete()

    @property
    def idle(self) -> bool:
        """No request in progress: waiting for a head, or for the rest of a body already answered."""
        answered = self.cycle is not None and self.cycle.response_complete
        return self.phase == HEAD or (self.phase == BODY and answered)

    def _seen(self, event: Any) -> None:
        if isinstance(event, h11.Request):
            self._arm(BODY, self.body_timeout, self._expire_body)
        elif isinstance(event, h11.EndOfMessage) and self.phase == BODY:
            if self.cycle is not None and self.cycle.response_complete:
                self._await_head()
            else:
                self._disarm()
                self.phase = APP

    def _await_head(self) -> None:
        self._partial = False
        self._arm(HEAD, self.header_timeout, self._expire_head)

    def _arm(self, phase: str, seconds: float, expire: Callable[[], None]) -> None:
        self._disarm()
        self.phase, self._since = phase, self.loop.time()
        self._deadline = self.loop.call_later(seconds, expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _evict(self) -> None:
        if self.phase == HEAD:
            self._expire_head()  # 408 if part of a head came
        else:
            self.transport.close()  # its answer was sent: the rest of its body is not wanted

    def _expire_head(self) -> None:
        if self._partial and not self.transport.is_closing():
            message = f"request head not received within {self.header_timeout:g} s"
            self.transport.write(_raw(408, "Request Timeout", message))
        self.transport.close()

    def _expire_body(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_started and not self.transport.is_closing():
            message = f"request body not received within {self.body_timeout:g} s"
            body = json.dumps({"error": message}).encode()
            headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                       (b"content-length", str(len(body)).encode())]  # fmt: skip
            with contextlib.suppress(h11.LocalProtocolError):
                self.transport.write(
                    self.conn.send(h11.Response(status_code=408, headers=headers, reason=b"Request Timeout"))
                    + (self.conn.send(h11.Data(data=body)) or b"")
                    + (self.conn.send(h11.EndOfMessage()) or b"")
                )
            cycle.response_started = cycle.response_complete = True  # the app's answer goes nowhere
        self.transport.close()


def protocol(settings: Settings) -> type[GuardedH11]:
    """:class:`GuardedH11` with this process's deadlines and connection limit."""
    return type(
        "GuardedH11",
        (GuardedH11,),
        {
            "header_timeout": settings.api_header_timeout_seconds,
            "body_timeout": settings.api_body_timeout_seconds,
            "max_connections": settings.api_max_connections,
        },
    )


async def serve(app: Any, settings: Settings) -> None:
    """Serve the job API until a stop signal (uvicorn's own handlers replaced by ours)."""
    from worker.process.signals import StopSignals

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # StopSignals has them: finish the requests in flight, exit at a second signal

    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        http=protocol(settings),
        timeout_keep_alive=settings.api_keep_alive_seconds,
        timeout_graceful_shutdown=c.API_SHUTDOWN_SECONDS,  # bounded: a stuck request cannot hold it
        h11_max_incomplete_event_size=c.API_MAX_HEAD_BYTES,
    )
    server = Server(config)
    StopSignals(on_stop=lambda: setattr(server, "should_exit", True)).install()
    await server.serve()
