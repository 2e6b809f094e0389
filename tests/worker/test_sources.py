"""Sources: inline caps, input-root containment (traversal, symlinks), URL allowlist and redirects."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest
from worker_http import SourceServer

from worker import sources
from worker.errors import PermanentJobError, TransientJobError


def limits(
    root: Path, hosts: frozenset[str] = frozenset(), cap: int = 1000, private: bool = True
) -> sources.SourceLimits:
    """The test source server is on loopback: reaching it needs the private-address opt-in."""
    return sources.SourceLimits(
        max_inline_bytes=cap, max_source_bytes=cap, input_root=root, allowed_hosts=hosts, timeout_seconds=1.0,
        private_addresses=private,
    )  # fmt: skip


async def test_inline_round_trip_and_cap(tmp_path: Path) -> None:
    assert await sources.fetch({"inline": base64.b64encode(b"hello").decode()}, limits(tmp_path)) == b"hello"
    with pytest.raises(PermanentJobError, match="over the 1000-byte cap"):
        await sources.fetch({"inline": base64.b64encode(b"x" * 1001).decode()}, limits(tmp_path))
    with pytest.raises(PermanentJobError, match="not valid base64"):
        await sources.fetch({"inline": "a!b="}, limits(tmp_path))


async def test_path_inside_root(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "a.bin").write_bytes(b"abc")
    (tmp_path / "in" / "link.bin").symlink_to(tmp_path / "in" / "sub" / "a.bin")
    assert await sources.fetch({"path": "sub/a.bin"}, limits(tmp_path / "in")) == b"abc"
    assert await sources.fetch({"path": "link.bin"}, limits(tmp_path / "in")) == b"abc"


@pytest.mark.parametrize(
    ("rel", "reason"),
    [
        ("../secret.txt", "escapes the input root"),
        ("sub/../../secret.txt", "escapes the input root"),
        ("escape.txt", "escapes the input root"),
        ("escdir/secret.txt", "escapes the input root"),
        ("/etc/hostname", "must be relative to the input root"),
        ("missing.jpg", "does not exist"),
        ("sub", "is not a regular file"),
        ("big.bin", "over the 1000-byte cap"),
    ],
)
async def test_path_refusals(tmp_path: Path, rel: str, reason: str) -> None:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("secret")
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (root / "escdir").symlink_to(tmp_path)
    (root / "big.bin").write_bytes(b"x" * 1001)
    with pytest.raises(PermanentJobError, match=reason):
        await sources.fetch({"path": rel}, limits(root))


def test_host_allowlist() -> None:
    allowed = frozenset({"assets.example", "127.0.0.1:8080"})
    assert sources.host_allowed("https://assets.example/a.pdf", allowed)
    assert sources.host_allowed("https://ASSETS.example:443/a.pdf", allowed)
    assert sources.host_allowed("http://assets.example/a.pdf", allowed)  # 80, http's own port
    # #16 item 9: a bare host allows its scheme's default port only, not every port.
    assert not sources.host_allowed("https://assets.example:8443/a.pdf", allowed)
    assert not sources.host_allowed("http://assets.example:6379/", allowed)
    assert sources.host_allowed("https://assets.example:8443/a", allowed | {"assets.example:8443"})
    assert not sources.host_allowed("http://assets.example:99999/", allowed)
    assert sources.host_allowed("http://127.0.0.1:8080/a", allowed)
    assert not sources.host_allowed("http://127.0.0.1:8081/a", allowed)
    assert not sources.host_allowed("http://evil.example/a", allowed)
    assert not sources.host_allowed("file:///etc/passwd", allowed)
    assert not sources.host_allowed("ftp://assets.example/a", allowed)


async def test_url_fetch_and_refusals(tmp_path: Path, source_server: SourceServer) -> None:
    ok = frozenset({source_server.host})
    url = source_server.route("/src/ok.bin", body=b"payload")
    assert await sources.fetch({"url": url}, limits(tmp_path, ok)) == b"payload"

    with pytest.raises(
        PermanentJobError, match=r"source host of http://127\.0\.0\.1:\d+/src/ok.bin is not allowed"
    ):
        await sources.fetch({"url": url}, limits(tmp_path, frozenset({"assets.example"})))

    # Same server under another name is a different host: the redirect target is re-checked.
    evil = f"http://localhost:{source_server.port}/src/ok.bin"
    hop = source_server.route("/src/hop", status=302, headers={"Location": evil})
    refused = r"source host of http://localhost:\d+/src/ok\.bin is not allowed"
    with pytest.raises(PermanentJobError, match=refused):
        await sources.fetch({"url": hop}, limits(tmp_path, ok))

    inside = source_server.route("/src/inside", status=301, headers={"Location": "/src/ok.bin"})
    assert await sources.fetch({"url": inside}, limits(tmp_path, ok)) == b"payload"

    loop = source_server.route("/src/loop", status=302, headers={"Location": "/src/loop"})
    with pytest.raises(PermanentJobError, match="too many redirects"):
        await sources.fetch({"url": loop}, limits(tmp_path, ok))

    big = source_server.route("/src/big", body=b"x" * 1001)
    with pytest.raises(PermanentJobError, match="over the 1000-byte cap"):
        await sources.fetch({"url": big}, limits(tmp_path, ok))

    with pytest.raises(PermanentJobError, match="answered 404"):
        await sources.fetch({"url": source_server.url("/src/nope")}, limits(tmp_path, ok))


async def test_url_transient_errors(tmp_path: Path, source_server: SourceServer) -> None:
    ok = frozenset({source_server.host})
    flaky = source_server.route("/src/flaky", body=b"x", fail_first=1)
    with pytest.raises(TransientJobError, match="answered 503"):
        await sources.fetch({"url": flaky}, limits(tmp_path, ok))
    assert await sources.fetch({"url": flaky}, limits(tmp_path, ok)) == b"x"

    slow = source_server.route("/src/slow", body=b"x", delay=2.0)
    with pytest.raises(TransientJobError, match=r"timed out fetching|took over 1s"):
        await sources.fetch({"url": slow}, limits(tmp_path, ok))


async def test_a_trickling_source_is_cut_off_at_the_total_deadline(
    tmp_path: Path, source_server: SourceServer
) -> None:
    """#16 item 8: a byte every 0.2 s never trips a 1 s read timeout, but the fetch as a whole must end."""
    ok = frozenset({source_server.host})
    trickle = source_server.route("/src/trickle", body=b"x" * 40, trickle=0.2)
    started = time.monotonic()
    with pytest.raises(TransientJobError, match=r"took over 1s \(PREVIEW_URL_TIMEOUT_SECONDS\)"):
        await sources.fetch({"url": trickle}, limits(tmp_path, ok))
    assert time.monotonic() - started < 2.0


async def test_a_name_resolving_to_a_private_address_is_refused_without_the_opt_in(
    tmp_path: Path, source_server: SourceServer
) -> None:
    """#16 item 9: an allow-listed name that resolves to loopback (or any non-public address)."""
    url = source_server.route("/src/private", body=b"secret")
    hosts = frozenset({source_server.host, f"localhost:{source_server.port}"})
    for target in (url, url.replace("127.0.0.1", "localhost")):
        with pytest.raises(PermanentJobError, match="resolves to a non-public address"):
            await sources.fetch({"url": target}, limits(tmp_path, hosts, private=False))
    assert source_server.routes["/src/private"].hits == 0  # refused before connecting
    assert await sources.fetch({"url": url}, limits(tmp_path, hosts, private=True)) == b"secret"


async def test_a_non_http_answer_leaks_none_of_its_bytes_into_the_reason(tmp_path: Path) -> None:
    """#16 item 9: failedReason was a port-scan oracle when it quoted what a port answered."""

    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"-ERR secret-banner-of-some-service\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(banner, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises((TransientJobError, PermanentJobError)) as info:
            await sources.fetch(
                {"url": f"http://127.0.0.1:{port}/x"}, limits(tmp_path, frozenset({f"127.0.0.1:{port}"}))
            )
        assert "secret-banner" not in str(info.value) and "ERR" not in str(info.value)
    finally:
        server.close()
        await server.wait_closed()


CONTROL = ["\t/ok.bin", "/ok\t.bin", "/ok.bin\r\nX-Injected: 1", "/ok\x7f.bin"]


@pytest.mark.parametrize("path", CONTROL, ids=repr)
async def test_a_url_httpx_refuses_fails_for_good_not_as_transient(
    tmp_path: Path, source_server: SourceServer, path: str
) -> None:
    # The schema refuses these first; a job that reaches the fetch anyway is not retried three times.
    url = source_server.url(path)
    with pytest.raises(PermanentJobError, match=r"InvalidURL \(not retried\)"):
        await sources.fetch_url(url, limits(tmp_path, frozenset({source_server.host})))
