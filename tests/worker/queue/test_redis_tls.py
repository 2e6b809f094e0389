"""Redis over TLS with a private CA (``ssl_ca_certs``): a Sentinel-managed master that speaks only TLS.

One master and two replicas listening on TLS ports only (``--port 0``), replicating over TLS,
and three sentinels that reach them over TLS. The worker, the job client and the pipelined
connection are given ``rediss+sentinel://…?ssl_ca_certs=<ca>``: they must check the servers'
certificates against that CA, follow a failover, and refuse a server signed by another CA.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import worker_media as media
from pydantic import ValidationError
from worker_kit import b64, eventually, payload

from infra.tools.local.cluster.certs import ensure_pki
from mobius_preview_client import connections
from tests.servers import SentinelGroup, TlsFiles
from worker.queue import queues
from worker.queue.pipe import PipelinedConnection
from worker.settings import Settings, describe

PASSWORD = "tls-failover-pw"
JOBS = 60


@pytest.fixture
def tls_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    pki = ensure_pki(tmp_path / "pki")  # a CA and a cert whose SANs include 127.0.0.1
    files = TlsFiles(str(pki.ca_cert), str(pki.server_cert), str(pki.server_key))
    g = SentinelGroup(tmp_path / "sentinel", PASSWORD, tls=files)
    g.start()
    yield g
    g.stop()


def test_the_servers_speak_only_tls(tls_group: SentinelGroup) -> None:
    plain = redis.Redis(port=tls_group.master_port(), password=PASSWORD, socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    plain.close()


async def test_the_worker_drains_over_tls_through_a_failover(
    tls_group: SentinelGroup, worker_env: dict[str, str], spawn_worker: Any
) -> None:
    url = tls_group.url
    assert url.startswith("rediss+sentinel://") and "ssl_ca_certs=" in url
    settings = Settings(**{**worker_env, "REDIS_URL": url})
    q = queues.Queues(settings, queues.redis_client(url, patient=True))
    try:
        image = b64(media.png(32, 24))
        for i in range(JOBS):
            await q.add(payload({"inline": image}, f"tls-{i}"))
        spawn_worker(REDIS_URL=url, PREVIEW_WORKER_CONCURRENCY="4")

        async def some_done() -> bool:
            return await q.main.getCompletedCount() >= JOBS // 4

        await eventually(some_done, timeout=60)
        old = tls_group.master_port()
        tls_group.kill(old)

        async def all_done() -> bool:
            return await q.main.getCompletedCount() >= JOBS

        await eventually(all_done, timeout=90, every=0.2)
        assert tls_group.master_port() != old
        assert await q.main.getFailedCount() == 0
        assert [await q.state(f"tls-{i}") for i in range(JOBS)] == ["completed"] * JOBS
    finally:
        await q.close()


async def test_the_pipelined_connection_checks_the_ca_and_follows_the_master(
    tls_group: SentinelGroup,
) -> None:
    pipe = PipelinedConnection(tls_group.url, reconnect_pause=0.1)
    try:
        assert await pipe.execute("SET", "k", "v") == "OK"
        tls_group.kill(tls_group.master_port())
        for _ in range(150):
            try:
                assert await pipe.execute("SET", "k", "after") == "OK"
                break
            except redis.exceptions.ConnectionError:
                await asyncio.sleep(0.2)
        with tls_group.client(tls_group.master_port()) as new:
            assert new.get("k") == "after"
    finally:
        await pipe.close()


async def test_a_server_signed_by_another_ca_is_refused(tls_group: SentinelGroup, tmp_path: Path) -> None:
    other = ensure_pki(tmp_path / "other-pki").ca_cert
    url = tls_group.url.replace(tls_group.tls.ca if tls_group.tls else "", str(other))
    client = connections.client(url)
    try:
        with pytest.raises(redis.ConnectionError) as info:
            await client.ping()
        assert isinstance(info.value.__cause__ or info.value.__context__, ssl.SSLCertVerificationError) or (
            "certificate verify failed" in str(info.value)
        )
    finally:
        await client.aclose()
    pipe = PipelinedConnection(url, reconnect_pause=0.1)
    try:
        with pytest.raises((redis.exceptions.ConnectionError, ssl.SSLError)):
            await pipe.execute("PING")
    finally:
        await pipe.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://:pwX@h1/m?ssl_ca_certs=/etc/ca.pem", "ssl_ca_certs without TLS"),
        ("rediss+sentinel://:pwX@h1/m?ssl_ca_certs=ca.pem", "ssl_ca_certs must be an absolute path"),
        (
            "rediss+sentinel://:pwX@h1/m?ssl_ca_certs=/nope/ca.pem",
            "ssl_ca_certs file /nope/ca.pem is not readable",
        ),
        (
            "rediss://:pwX@h1:6380/0?ssl_ca_certs=/nope/ca.pem",
            "ssl_ca_certs file /nope/ca.pem is not readable",
        ),
    ],
)
def test_a_bad_ca_option_is_refused_at_start_naming_it_never_the_password(
    url: str, expected: str, worker_env: dict[str, str]
) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(**{**worker_env, "REDIS_URL": url})
    said = "\n".join(describe(info.value))  # what the worker prints before exiting 2
    assert expected in said and "REDIS_URL" in said
    assert "pwX" not in said
