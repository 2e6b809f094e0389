"""Fetch a job's source bytes: inline base64, a path under PREVIEW_INPUT_ROOT, or an allowlisted URL.

Every kind is size-capped. Paths may not leave the input root, whether by ``..``,
an absolute path or a symlink. URLs must be http(s) on an allowlisted host, and
every redirect is re-checked against the allowlist before it is followed. Each hop's
host is resolved once, and the fetch connects to exactly the addresses that were checked.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from worker import constants as c
from worker.errors import SourceError, SourceTimeout, SourceUnavailable

MAX_REDIRECTS = 5
# Building an SSL context loads the CA bundle (tens of ms of CPU); do it once, not per job,
# so the event loop (lock renewal, signals) is never blocked by it.
_SSL_CONTEXT = httpx.create_ssl_context()


@dataclass(frozen=True)
class SourceLimits:
    """What a source may be: caps, the input root, the URL allowlist and timeout."""

    max_inline_bytes: int
    max_source_bytes: int
    input_root: Path
    allowed_hosts: frozenset[str]
    timeout_seconds: float
    # Loopback, private and link-local addresses are refused unless opted in
    # (PREVIEW_SOURCE_PRIVATE_ADDRESSES=allow): an allow-listed name must not reach the pod's network.
    private_addresses: bool = False


async def fetch(source: dict[str, Any], limits: SourceLimits) -> bytes:
    """Return the bytes of ``source`` (one of inline/path/url) or raise a job error saying why not."""
    if "inline" in source:
        return decode_inline(source["inline"], limits.max_inline_bytes)
    if "path" in source:
        return await asyncio.to_thread(read_path, source["path"], limits)
    if "url" in source:
        return await fetch_url(source["url"], limits)
    raise SourceError("source has none of inline, path, url")


def decode_inline(data: str, cap: int) -> bytes:
    """Decode inline base64, refusing more than ``cap`` decoded bytes."""
    if len(data) // 4 * 3 > cap + 3:
        raise SourceError(f"inline source is over the {cap}-byte cap")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as err:
        raise SourceError(f"inline source is not valid base64: {err}") from None
    if len(raw) > cap:
        raise SourceError(f"inline source is {len(raw)} bytes, over the {cap}-byte cap")
    return raw


def resolve_path(rel: str, root: Path) -> Path:
    """Resolve ``rel`` under ``root``; refuse absolute paths, ``..`` and symlinks that escape."""
    if Path(rel).is_absolute():
        raise SourceError(f"source path {rel!r} must be relative to the input root")
    base = root.resolve()
    try:
        target = (base / rel).resolve(strict=True)
    except FileNotFoundError:
        raise SourceError(f"source path {rel!r} does not exist") from None
    except (OSError, RuntimeError) as err:
        raise SourceError(f"source path {rel!r} cannot be resolved: {err}") from None
    if not target.is_relative_to(base):
        raise SourceError(f"source path {rel!r} escapes the input root")
    if not target.is_file():
        raise SourceError(f"source path {rel!r} is not a regular file")
    return target


def read_path(rel: str, limits: SourceLimits) -> bytes:
    """Read a file under the input root, size-capped."""
    target = resolve_path(rel, limits.input_root)
    size = target.stat().st_size
    if size > limits.max_source_bytes:
        raise SourceError(f"source file is {size} bytes, over the {limits.max_source_bytes}-byte cap")
    with target.open("rb") as fh:
        return fh.read(limits.max_source_bytes + 1)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_allowed(url: str, allowed: frozenset[str]) -> bool:
    """True if ``url`` is http(s) and its host and port are on the allowlist.

    An entry ``host`` allows that host on its scheme's default port only; ``host:port``
    allows exactly that port. (A bare host used to allow every port: a port scanner.)
    """
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return False
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:  # a port that is not a number, or out of range
        return False
    host = parts.hostname.lower()
    return f"{host}:{port}" in allowed or (host in allowed and port == _DEFAULT_PORTS[parts.scheme])


async def resolve(host: str, port: int | None) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order, each once.

    The only lookup of a source host: the fetch connects to what this answered, never to
    a second lookup of the name, which a rebinding DNS server could answer differently.
    """
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))


async def check_addresses(url: str, private_ok: bool) -> list[str]:
    """Resolve the host of ``url`` once and return the addresses the fetch must connect to.

    Unless ``private_ok``, refuse the URL if any address is loopback, private, link-local or reserved.
    """
    parts = urlsplit(url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        addresses = await resolve(parts.hostname or "", port)
    except OSError:
        addresses = []
    if not addresses:
        raise SourceUnavailable(f"cannot resolve the host of {_safe(url)}")
    if not private_ok and not all(ipaddress.ip_address(a).is_global for a in addresses):
        raise SourceError(
            f"source host of {_safe(url)} resolves to a non-public address "
            f"({c.ENV_SOURCE_PRIVATE_ADDRESSES}=allow opts in)"
        )
    return addresses


def pinned_request(client: httpx.AsyncClient, url: str, address: str) -> httpx.Request:
    """A GET of ``url`` that connects to ``address`` but names the URL's host everywhere else.

    The Host header keeps the name (and port), and for https the ``sni_hostname`` extension
    makes httpcore send the name as SNI and verify the certificate against it, not the address.
    """
    named = httpx.URL(url)
    return client.build_request(
        "GET",
        named.copy_with(host=address),  # httpx brackets an IPv6 address
        headers={"Host": named.netloc.decode("ascii")},
        extensions={"sni_hostname": named.raw_host.decode("ascii")},
    )


async def _send(client: httpx.AsyncClient, url: str, addresses: list[str]) -> httpx.Response:
    """Stream a GET of ``url`` from the first checked address that takes the connection.

    Trying each in turn keeps what connecting by name did (every answer tried), with checked answers only.
    """
    *others, last = addresses
    for address in others:
        with contextlib.suppress(httpx.ConnectError):
            return await client.send(pinned_request(client, url, address), stream=True)
    return await client.send(pinned_request(client, url, last), stream=True)


async def fetch_url(url: str, limits: SourceLimits) -> bytes:
    """GET ``url`` following at most 5 redirects, each re-checked against the allowlist.

    ``timeout_seconds`` bounds the whole fetch, redirects and body included, not each read:
    a source sending a byte a second never holds a job longer than that.
    """
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            return await _fetch_url(url, limits)
    except TimeoutError:
        raise SourceTimeout(
            f"fetching {_safe(url)} took over {limits.timeout_seconds:g}s ({c.ENV_URL_TIMEOUT_SECONDS})"
        ) from None


async def _fetch_url(url: str, limits: SourceLimits) -> bytes:
    timeout = httpx.Timeout(limits.timeout_seconds)
    # No keep-alive: the pool keys connections by address, and one whose TLS was verified for
    # one name must not carry a later hop's request for another name that resolves there too.
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(
        follow_redirects=False, timeout=timeout, trust_env=False, verify=_SSL_CONTEXT, limits=no_reuse
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            if not host_allowed(url, limits.allowed_hosts):
                raise SourceError(f"source host of {_safe(url)} is not allowed (PREVIEW_SOURCE_HOSTS)")
            addresses = await check_addresses(url, limits.private_addresses)
            try:
                async with contextlib.aclosing(await _send(client, url, addresses)) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    return await _read_body(resp, url, limits.max_source_bytes)
            # A control character in a redirect's Location, say: retrying cannot mend a URL.
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
                invalid = f"cannot fetch {_safe(url)}: {type(err).__name__} (not retried)"
                raise SourceError(invalid) from None
            except httpx.TimeoutException:
                raise SourceTimeout(f"timed out fetching {_safe(url)}") from None
            except httpx.TransportError as err:
                raise SourceUnavailable(f"cannot fetch {_safe(url)}: {type(err).__name__}") from None
    raise SourceError(f"too many redirects fetching {_safe(url)}")


async def _read_body(resp: httpx.Response, url: str, cap: int) -> bytes:
    if resp.status_code >= 500 or resp.status_code in (408, 429):
        raise SourceUnavailable(f"{_safe(url)} answered {resp.status_code}")
    if resp.status_code != 200:
        raise SourceError(f"{_safe(url)} answered {resp.status_code}")
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise SourceError(f"source is {declared} bytes, over the {cap}-byte cap")
    body = bytearray()
    async for chunk in resp.aiter_bytes():
        body += chunk
        if len(body) > cap:
            raise SourceError(f"source is over the {cap}-byte cap")
    return bytes(body)


def _safe(url: str) -> str:
    """The URL without userinfo or query, fit for an error message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"
