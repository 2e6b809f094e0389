"""Sources, DNS rebinding (#16 item 9): each hop's host is resolved once and the fetch connects to
exactly the checked address, with the name kept in the Host header, SNI and the certificate check."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from test_sources import limits
from worker_http import SourceServer

from worker import sources
from worker.errors import PermanentJobError


class RebindingDNS:
    """Answers a name differently on each lookup (the last answer then repeats), as rebinding DNS does.

    The tests put it in place of ``sources.resolve`` because no DNS server on this machine can rebind
    a name. It knows only the names it is given.
    """

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[tuple[str, int | None]] = []

    async def resolve(self, host: str, port: int | None) -> list[str]:
        self.lookups.append((host, port))
        if host not in self.answers:
            raise OSError(f"no such name {host}")
        queue = self.answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> RebindingDNS:
    fake = RebindingDNS({})
    # raising=False: against code without the seam this test must fail on its assertions, not here.
    monkeypatch.setattr(sources, "resolve", fake.resolve, raising=False)
    return fake


@contextlib.asynccontextmanager
async def http_server(host: str, port: int, body: bytes) -> AsyncIterator[list[str]]:
    """A one-answer HTTP server on ``host:port``; yields the Host header of each request it got."""
    hosts: list[str] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        fields = dict(line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line)
        hosts.append(next(v.strip() for k, v in fields.items() if k.lower() == "host"))
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, host, port)
    try:
        yield hosts
    finally:
        server.close()
        await server.wait_closed()


async def test_the_fetch_connects_to_the_checked_address_not_a_second_lookup(
    tmp_path: Path, source_server: SourceServer, dns: RebindingDNS
) -> None:
    """#16 item 9, DNS rebinding: the name answers 127.0.0.2 for the check, then 127.0.0.1 (the system's
    answer for localhost); the fetch must reach the checked 127.0.0.2, even with the private opt-in."""
    port = source_server.port
    dns.answers["localhost"] = [["127.0.0.2"], ["127.0.0.1"]]
    source_server.route("/src/rebound", body=b"rebound")
    async with http_server("127.0.0.2", port, b"pinned") as hosts:
        got = await sources.fetch(
            {"url": f"http://localhost:{port}/src/rebound"},
            limits(tmp_path, frozenset({f"localhost:{port}"})),
        )
    assert got == b"pinned"
    assert source_server.routes["/src/rebound"].hits == 0
    assert hosts == [f"localhost:{port}"]  # the name, not the address, in the Host header
    assert dns.lookups == [("localhost", port)]  # resolved once


async def test_every_redirect_hop_is_resolved_once_and_pinned(
    tmp_path: Path, source_server: SourceServer, dns: RebindingDNS
) -> None:
    port = source_server.port
    dns.answers["127.0.0.1"] = [["127.0.0.1"]]
    dns.answers["rebind.test"] = [["127.0.0.2"], ["127.0.0.1"]]
    hop = source_server.route(
        "/src/to-rebind", status=302, headers={"Location": f"http://rebind.test:{port}/x"}
    )
    allowed = frozenset({source_server.host, f"rebind.test:{port}"})
    async with http_server("127.0.0.2", port, b"pinned") as hosts:
        assert await sources.fetch({"url": hop}, limits(tmp_path, allowed)) == b"pinned"
    assert hosts == [f"rebind.test:{port}"]
    assert dns.lookups == [("127.0.0.1", port), ("rebind.test", port)]


async def test_a_name_with_any_non_public_answer_is_refused_without_connecting(
    tmp_path: Path, source_server: SourceServer, dns: RebindingDNS
) -> None:
    port = source_server.port
    dns.answers["assets.example"] = [["93.184.215.14", "127.0.0.1"]]
    source_server.route("/src/mixed", body=b"secret")
    with pytest.raises(
        PermanentJobError, match=r"assets\.example:\d+/src/mixed resolves to a non-public address"
    ):
        await sources.fetch(
            {"url": f"http://assets.example:{port}/src/mixed?token=t"},
            limits(tmp_path, frozenset({f"assets.example:{port}"}), private=False),
        )
    assert source_server.routes["/src/mixed"].hits == 0


async def test_a_checked_address_that_refuses_falls_through_to_the_next_checked_one(
    tmp_path: Path, source_server: SourceServer, dns: RebindingDNS
) -> None:
    """Connecting by name tried every answer; a pinned fetch tries every checked answer, nothing else."""
    port = source_server.port
    dns.answers["two.test"] = [["127.0.0.3", "127.0.0.2"], ["127.0.0.1"]]  # nothing listens on 127.0.0.3
    async with http_server("127.0.0.2", port, b"second") as hosts:
        got = await sources.fetch(
            {"url": f"http://two.test:{port}/x"}, limits(tmp_path, frozenset({f"two.test:{port}"}))
        )
    assert (got, hosts, dns.lookups) == (b"second", [f"two.test:{port}"], [("two.test", port)])


async def test_a_pinned_request_names_the_host_in_host_and_sni_and_brackets_ipv6() -> None:
    """The address goes in the URL only; Host, SNI and the certificate check keep the name."""
    async with httpx.AsyncClient() as client:
        six = sources.pinned_request(client, "https://u:p@Assets.Example:8443/a?x=1", "2001:db8::7")
        four = sources.pinned_request(client, "https://assets.example/a", "192.0.2.7")
    assert str(six.url) == "https://u:p@[2001:db8::7]:8443/a?x=1"
    assert (six.headers["host"], six.extensions["sni_hostname"]) == ("assets.example:8443", "assets.example")
    assert str(four.url) == "https://192.0.2.7/a"
    assert (four.headers["host"], four.extensions["sni_hostname"]) == ("assets.example", "assets.example")
