"""One auto-pipelined Redis connection for the worker's hot Lua calls (issue 7).

redis-py's asyncio client sends each command on a connection of its own from a pool
and spends more CPU per call in pool bookkeeping, timeouts, retries and event hooks
than in the call itself. At concurrency 50 that was the largest cost left in
:class:`~worker.queue.fastpath.FastWorker`. :class:`PipelinedConnection` is the client
Node.js BullMQ gets from ioredis: every slot shares one socket; commands issued in
the same event-loop pass go out in two writes (the first at once, so Redis starts on
it, the rest together when the pass ends); replies are matched to callers in order
(Redis answers in order on a connection). It speaks only RESP2 and has no
retry policy of its own. :class:`PipelinedScript` puts it under one bullmq Lua
script and falls back to that script's redis-py path, with its retries, whenever the
pipe cannot answer: a connection error, a lost connection, a reply slower than
``reply_timeout``, or a server still loading its data. The fallback may re-run a
call whose reply was lost, exactly as redis-py's own retry does.
Replies are decoded as redis-py decodes them with ``decode_responses=True``.

Kept because no library came close (#18; ``python -m bench --only clients``, EVALSHA calls/s
from 50 tasks on one Redis, 2026-12-02, 2-core machine): this pipe 195,000; valkey-glide 2.6
26,000 (28,000 through ``custom_command``); redis-py's pool 19,000; coredis 6.9 15,000. The
rule was to switch to a library within 10 % at concurrency 50.

Over 300 lines on purpose: the protocol, the connection and the script fallback are one
request/reply path whose ordering rules span all three; nothing outside uses the parts.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import Any, Protocol, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import ConnectionError, NoScriptError, ReadOnlyError, RedisError

from mobius_preview_client import connections
from worker import logs

log = logs.get("redis_pipe")
CONNECT_TIMEOUT_SECONDS = 5.0
REPLY_TIMEOUT_SECONDS = 30.0
RECONNECT_PAUSE_SECONDS = 1.0


class UnsupportedUrl(ValueError):
    """A Redis URL this client does not handle (the caller keeps the redis-py path)."""


class _Target:
    """Where and how to connect, read by redis-py's own URL parser (so the pipe and the pooled
    client always agree on host, database and credentials)."""

    _SUPPORTED = frozenset({"host", "port", "db", "username", "password", "path", "connection_class",
                            connections.CA_OPTION})  # fmt: skip

    def __init__(self, url: str) -> None:
        try:
            self.sentinel = connections.parse_sentinel(url)
        except ValueError as err:
            raise UnsupportedUrl(f"the pipelined connection does not support this URL: {err}") from None
        if self.sentinel is not None:  # the master's address is asked of the sentinels at each connect
            t = self.sentinel
            kwargs: dict[str, Any] = {"username": t.username, "password": t.password, "db": t.db}
            if t.tls:
                kwargs["connection_class"] = SSLConnection
                kwargs[connections.CA_OPTION] = t.ca_certs
        else:
            kwargs = self._parse(url)
        kind = kwargs.get("connection_class")
        self.unix_path: str | None = kwargs.get("path") if kind is UnixDomainSocketConnection else None
        self.tls = kind is SSLConnection
        self.ca_certs: str | None = kwargs.get(connections.CA_OPTION)
        self.host: str = kwargs.get("host", "localhost")
        self.port: int = kwargs.get("port", 6379)
        self.username: str | None = kwargs.get("username")
        self.password: str | None = kwargs.get("password")
        self.db: int = kwargs.get("db", 0)

    @classmethod
    def _parse(cls, url: str) -> dict[str, Any]:
        try:
            kwargs: dict[str, Any] = dict(parse_url(url))
        except ValueError as err:
            raise UnsupportedUrl(f"the pipelined connection does not support this URL: {err}") from None
        extra = set(kwargs) - cls._SUPPORTED
        if extra:
            raise UnsupportedUrl(f"the pipelined connection does not support options {sorted(extra)}")
        return kwargs


class _Protocol(asyncio.Protocol):
    """One socket: commands written at most twice per loop pass, and the futures owed a reply, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reader = hiredis.Reader(encoding="utf-8", errors=connections.DECODE_ERRORS)
        self.pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.outbox: list[bytes] = []
        self.flush_handle: asyncio.Handle | None = None
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        self.progress = loop.time()

    def send(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue one command; the future gets its raw reply (a ``hiredis.ReplyError`` for errors)."""
        fut: asyncio.Future[Any] = self.loop.create_future()
        if self.lost is not None:
            fut.set_exception(self.lost)
            return fut
        if not self.pending:
            self.progress = self.loop.time()
        self.pending.append(fut)
        packed = hiredis.pack_command(args)
        if self.flush_handle is None and self.transport is not None:
            # The first command of this loop pass goes out now, so Redis works on it while
            # the other slots build theirs; those go out together when the pass ends.
            # (Coalescing the first one too halves throughput at concurrency 10.)
            self.transport.write(packed)
            self.flush_handle = self.loop.call_soon(self.flush)
        else:
            self.outbox.append(packed)
            if self.flush_handle is None:
                self.flush_handle = self.loop.call_soon(self.flush)
        return fut

    def flush(self) -> None:
        self.flush_handle = None
        if not self.outbox:
            return
        out, self.outbox = self.outbox, []
        if self.lost is None and self.transport is not None:
            self.transport.write(b"".join(out))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.progress = self.loop.time()
        try:
            self.reader.feed(data)
            while (reply := self.reader.gets()) is not False:
                fut = self.pending.popleft()
                if not fut.done():
                    fut.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as err:  # garbage, or a reply nobody asked for
            self.fail(ConnectionError(f"redis protocol error: {err!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection to redis lost: {exc!r}" if exc else "redis closed the connection"
        self.fail(ConnectionError(reason))

    def fail(self, err: Exception) -> None:
        """Mark the connection dead, drop the socket and fail every call still owed a reply."""
        if self.lost is None:
            self.lost = err
        if self.transport is not None:
            self.transport.abort()
        while self.pending:
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_exception(self.lost)


def _decode(reply: Any) -> Any:
    """A reply as redis-py returns it: error replies become redis-py's exception classes."""
    if isinstance(reply, hiredis.ReplyError):
        raise BaseParser.parse_error(str(reply))  # type: ignore[no-untyped-call]  # redis-py's mapping
    return reply


class PipelinedConnection:
    """One lazily opened, auto-pipelined connection; :meth:`execute` sends a command.

    Raises :class:`UnsupportedUrl` for URLs it cannot honour, redis-py's
    :class:`ConnectionError` when it cannot answer (the caller falls back), and
    redis-py's exception for an error reply.
    """

    def __init__(
        self,
        url: str,
        *,
        reply_timeout: float = REPLY_TIMEOUT_SECONDS,
        reconnect_pause: float = RECONNECT_PAUSE_SECONDS,
    ) -> None:
        self.target = _Target(url)
        self.reply_timeout = reply_timeout
        self.reconnect_pause = reconnect_pause
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._retry_at = 0.0
        self._closed = False
        self._watchdog: asyncio.TimerHandle | None = None

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its decoded reply."""
        proto = self._proto
        if proto is None or proto.lost is not None:
            proto = await self._connect()
        return self.reply(await proto.send(args), proto)

    def sent(self, args: tuple[Any, ...]) -> tuple[asyncio.Future[Any], _Protocol] | None:
        """:meth:`execute` without its coroutine: ``args`` sent now on the open connection, the
        future of the raw reply and the connection, to pass to :meth:`reply`; None when the
        connection is not open (then :meth:`execute`, which opens it)."""
        proto = self._proto
        if proto is None or proto.lost is not None:
            return None
        return proto.send(args), proto

    def reply(self, raw: Any, proto: _Protocol) -> Any:
        """A raw reply from ``proto`` as :meth:`execute` returns it (an error reply raised)."""
        try:
            return _decode(raw)
        except ReadOnlyError:
            if self.target.sentinel is None:
                raise
            # The master this socket reached was demoted in a failover: reconnect through the
            # sentinels; the caller retries on the pooled client meanwhile.
            proto.fail(ConnectionError("the master was demoted to a replica"))
            raise ConnectionError("the master was demoted to a replica") from None

    async def _connect(self) -> _Protocol:
        if self._closed:
            raise ConnectionError("pipelined connection closed")
        if self._connecting is not None:  # someone else is connecting: wait for their result
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        if loop.time() < self._retry_at:
            raise ConnectionError("redis unreachable; pipelined connection paused")
        connecting = self._connecting = loop.create_future()
        try:
            proto = await asyncio.wait_for(self._open(loop), CONNECT_TIMEOUT_SECONDS)
        except (OSError, TimeoutError, RedisError) as err:
            self._retry_at = loop.time() + self.reconnect_pause
            error = ConnectionError(f"cannot open pipelined redis connection: {err!r}")
            connecting.set_exception(error)
            connecting.exception()  # mark retrieved; waiters, if any, still get it
            raise error from None
        except BaseException:  # cancelled: waiters must not wait for ever
            connecting.set_exception(ConnectionError("pipelined connection attempt cancelled"))
            connecting.exception()
            raise
        finally:
            self._connecting = None
        if self._closed:  # close() ran while we were connecting
            proto.fail(ConnectionError("pipelined connection closed"))
            connecting.set_exception(proto.lost or ConnectionError("closed"))
            connecting.exception()
            raise ConnectionError("pipelined connection closed")
        self._proto = proto
        connecting.set_result(proto)
        self._arm_watchdog(loop)
        return proto

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        """Connect, then AUTH and SELECT, queued together so nothing else can go first."""
        t = self.target
        proto = _Protocol(loop)
        if t.unix_path is not None:
            await loop.create_unix_connection(lambda: proto, t.unix_path)
        else:
            host, port = (t.host, t.port)
            if t.sentinel is not None:
                host, port = await connections.master_address(t.sentinel)
            tls = ssl.create_default_context(cafile=t.ca_certs) if t.tls else None
            await loop.create_connection(
                lambda: proto, host, port, ssl=tls, server_hostname=host if tls else None
            )
        handshake: list[tuple[Any, ...]] = []
        if t.password is not None:
            handshake.append(("AUTH", t.username, t.password) if t.username else ("AUTH", t.password))
        if t.db:
            handshake.append(("SELECT", t.db))
        if t.sentinel is not None:
            handshake.append(("ROLE",))  # a sentinel's answer can be stale during a failover
        try:
            replies = [_decode(reply) for reply in await asyncio.gather(*(proto.send(c) for c in handshake))]
            if t.sentinel is not None and replies[-1][0] != "master":
                raise ConnectionError(f"the sentinels' master answers ROLE {replies[-1][0]!r}")
        except BaseException:
            proto.fail(ConnectionError("handshake failed"))
            raise
        return proto

    def _arm_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        """Abort the connection when replies are owed and none came for ``reply_timeout``."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        period = min(1.0, self.reply_timeout / 2)

        def check() -> None:
            proto = self._proto
            self._watchdog = None
            if proto is None or proto.lost is not None or self._closed:
                return
            if proto.pending and loop.time() - proto.progress > self.reply_timeout:
                log.warning(
                    "redis did not reply in time; dropping the pipelined connection",
                    extra={"pending": len(proto.pending)},
                )
                proto.fail(ConnectionError(f"no reply from redis within {self.reply_timeout} s"))
                return
            self._watchdog = loop.call_later(period, check)

        self._watchdog = loop.call_later(period, check)

    async def close(self) -> None:
        """Close the socket; calls still owed a reply fail with :class:`ConnectionError`."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._proto is not None:
            self._proto.fail(ConnectionError("pipelined connection closed"))
            self._proto = None


class _Script(Protocol):
    sha: str
    script: str | bytes

    async def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any: ...


class PipelinedScript:
    """A bullmq Lua script (redis-py ``AsyncScript``) run over a :class:`PipelinedConnection`.

    Same call signature as the script it wraps. ``NOSCRIPT`` (a new or flushed server)
    loads the script over the pipe and retries; a failure of the pipe itself (not an
    error reply from the script) re-runs the call through the wrapped script, whose
    client has redis-py's retry policy. ``loads`` and ``fallbacks`` count both.
    """

    def __init__(self, script: _Script, pipe: PipelinedConnection) -> None:
        self.script = script
        self.pipe = pipe
        self.loads = 0
        self.fallbacks = 0

    async def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        keys = keys or []
        args = args or []
        if client is not None:
            return await self.script(keys=keys, args=args, client=client)
        command = self.command(keys, args)
        try:
            return await self.pipe.execute(*command)
        except (NoScriptError, ConnectionError) as err:
            return await self.recover(err, command, keys, args)

    def command(self, keys: list[Any], args: list[Any]) -> tuple[Any, ...]:
        """The ``EVALSHA`` command of a call (for :meth:`PipelinedConnection.sent`)."""
        return ("EVALSHA", self.script.sha, len(keys), *keys, *args)

    async def recover(
        self, err: Exception, command: tuple[Any, ...], keys: list[Any], args: list[Any]
    ) -> Any:
        """Finish a call whose pipelined ``command`` failed with ``err``: ``NOSCRIPT`` loads the
        script over the pipe and runs it again; a failure of the pipe itself (redis-py's
        ``BusyLoadingError``, the server loading, is one too) runs it through redis-py."""
        if isinstance(err, NoScriptError):
            self.loads += 1
            try:
                await self.pipe.execute("SCRIPT", "LOAD", self.script.script)
                return await self.pipe.execute(*command)
            except ConnectionError as lost:
                err = lost
        self.fallbacks += 1
        if self.fallbacks == 1 or self.fallbacks % 1000 == 0:
            log.info(
                "pipelined script call fell back to redis-py",
                extra={"error": f"{type(err).__name__}: {err}", "fallbacks": self.fallbacks},
            )
        return await self.script(keys=keys, args=args)
