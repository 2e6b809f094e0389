"""Where Redis is: one URL, a single server or a Sentinel-managed master, and every client made from it.

``REDIS_URL`` takes either form:

- ``redis://[[user]:password@]host[:port][/db]`` (``rediss://`` for TLS, ``unix://`` for a socket);
- ``redis+sentinel://[[user]:password@]host1[:port],host2[:port],…/<master name>[/db]`` (``rediss+sentinel://``
  for TLS to the master and replicas). The sentinels (default port 26379) are asked for the
  master's address on every new connection, so after a failover the clients reconnect to the
  promoted replica by themselves. The password authenticates to the master; the sentinels use
  ``?sentinel_password=…`` when they have their own, else none.

With TLS (``rediss://``, ``rediss+sentinel://``) the server's certificate is checked against the
system CAs, or against the CA file of ``?ssl_ca_certs=/absolute/path`` (a private CA, mounted
into the pod). The sentinels themselves are spoken to in plain text.

BullMQ's maintainers recommend a replicated Redis with failover over Cluster (a queue's keys must
live on one node); Sentinel, and managed services that fail over the same way, are that.
Every connection of the worker, the API and the producer client comes from :func:`client` or,
for the fast path's pipelined socket, from :func:`master_address`, so all of them follow the
same master.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
#: The URL option naming a CA file to check the server's TLS certificate against (redis-py's name).
CA_OPTION = "ssl_ca_certs"
SENTINEL_PORT = 26379
#: How every decoding client (and the pipelined socket) decodes replies: a job hash holding bytes
#: that are not UTF-8 reads as text with escapes instead of an error for the whole reply.
DECODE_ERRORS = "surrogateescape"
#: How long a sentinel may take to answer where the master is, per sentinel asked.
SENTINEL_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class SentinelTarget:
    """A Sentinel-managed master: the sentinels, its name, and how to talk to it."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None
    tls: bool
    ca_certs: str | None = None


def parse_sentinel(url: str) -> SentinelTarget | None:
    """The target of a ``redis+sentinel://`` URL; None for any other scheme; ValueError if malformed.

    Messages never include the URL: it carries passwords.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SENTINEL_SCHEMES:
        return None
    parts = urlsplit(f"x://{rest}")  # netloc and path split; the netloc's host list is read by hand
    creds, at, hosts = parts.netloc.rpartition("@")
    username, _, password = creds.partition(":") if at else ("", "", "")
    sentinels = []
    for entry in hosts.split(","):
        host, colon, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if not host or (colon and not (port.isdigit() and 1 <= int(port) <= 65535)):
            raise ValueError("needs sentinels as host[:port],host[:port],… before the master name")
        sentinels.append((host, int(port) if colon else SENTINEL_PORT))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError("needs the master's name after the sentinels, then an optional /<db>")
    query = parse_qs(parts.query)
    unknown = set(query) - {"sentinel_password", CA_OPTION}
    if unknown:
        raise ValueError(f"has unknown options {sorted(unknown)}")
    ca_certs = query[CA_OPTION][0] if CA_OPTION in query else None
    if ca_certs is not None and not SENTINEL_SCHEMES[scheme]:
        raise ValueError(f"has {CA_OPTION} without TLS: use rediss+sentinel://")
    return SentinelTarget(
        sentinels=tuple(sentinels),
        master=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=query["sentinel_password"][0] if "sentinel_password" in query else None,
        tls=SENTINEL_SCHEMES[scheme],
        ca_certs=ca_certs,
    )


def check_ca_file(url: str) -> None:
    """ValueError unless the ``ssl_ca_certs`` of ``url`` (if any) is an absolute path to a readable file.

    The path is named (it is no secret), the URL never is.
    """
    found = parse_qs(urlsplit(url).query).get(CA_OPTION)
    if not found:
        return
    path = Path(found[0])
    if not path.is_absolute():
        raise ValueError(f"{CA_OPTION} must be an absolute path, got {found[0]!r}")
    try:
        with path.open("rb") as pem:
            pem.read(1)
    except OSError as err:
        raise ValueError(f"{CA_OPTION} file {found[0]} is not readable ({err.strerror})") from None


def _sentinel(target: SentinelTarget) -> Sentinel:
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": SENTINEL_TIMEOUT_SECONDS}
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    return Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]


class _FollowsTheMaster:
    """Connection mixin: every (re)connect asks the sentinels where the master is now.

    redis-py's SentinelManagedConnection does so only when its pool hands it out; a connection
    that reconnects by itself (inside a command's retry, or a single-connection client such as
    BullMQ's blocking one) went back to the dead master's address for ever. Seen here: after a
    failover the worker's BZPOPMIN retried the old port until its retries ran out.
    """

    host: str
    port: int
    is_connected: bool
    connection_pool: SentinelConnectionPool

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        pool = self.connection_pool
        if not self.is_connected and pool.is_master:
            self.host, self.port = await pool.get_master_address()  # type: ignore[no-untyped-call]
        await super().connect_check_health(  # type: ignore[misc]
            check_health=check_health, retry_socket_connect=retry_socket_connect
        )


class MasterConnection(_FollowsTheMaster, SentinelManagedConnection):
    """A connection to the Sentinel-managed master."""


class MasterSSLConnection(_FollowsTheMaster, SentinelManagedSSLConnection):
    """A TLS connection to the Sentinel-managed master."""


class _SentinelManaged(aioredis.Redis):
    """A client of a Sentinel-managed master; closing it closes its connections to the sentinels too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool = cast(SentinelConnectionPool, self.connection_pool)
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()


def client(url: str, **options: Any) -> aioredis.Redis:
    """A redis-py client for ``url`` with ``options`` (``decode_responses``, ``retry``, …).

    For a Sentinel URL the client's pool asks the sentinels for the master on every new
    connection, and drops a connection whose server was demoted (redis-py's SentinelConnectionPool).
    """
    if options.get("decode_responses"):
        # Bytes that are not UTF-8 (a raw producer's) decode losslessly instead of failing the
        # whole reply; mobius_preview_client.intake turns them back into bytes and refuses the job.
        options.setdefault("encoding_errors", DECODE_ERRORS)
    target = parse_sentinel(url)
    if target is None:
        plain: aioredis.Redis = aioredis.Redis.from_url(url, **options)
        return plain
    single = bool(options.pop("single_connection_client", False))
    conn = {"db": target.db, "username": target.username, "password": target.password, **options}
    conn["connection_class"] = MasterSSLConnection if target.tls else MasterConnection
    if target.ca_certs is not None:
        conn[CA_OPTION] = target.ca_certs
    pool = SentinelConnectionPool(target.master, _sentinel(target), **conn)  # type: ignore[no-untyped-call]
    managed = _SentinelManaged(connection_pool=pool, single_connection_client=single)
    managed.auto_close_connection_pool = True  # what Redis.from_pool does: aclose() closes the pool
    return managed


async def master_address(target: SentinelTarget) -> tuple[str, int]:
    """Where the sentinels say the master is now (redis-py's MasterNotFoundError if none knows)."""
    sentinel = _sentinel(target)
    try:
        host, port = await sentinel.discover_master(target.master)
    finally:
        for s in sentinel.sentinels:
            await s.aclose()
    return str(host), int(port)
