"""A throwaway redis-server for the benchmark, and a fast queue filler."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import redis

from infra.tools.local.ports import free_port
from worker import constants as c


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
        fill_jobs(self.url, queue, jobs)


def fill_jobs(url: str, queue: str, jobs: list[tuple[dict[str, Any], str]]) -> None:
    """Pre-fill ``queue`` at ``url`` with ``(data, jobId)`` jobs named ``preview``, as the API adds them."""
    import asyncio

    from bullmq import Queue

    async def add() -> None:
        q = Queue(queue, {"connection": url, "prefix": c.BULL_PREFIX})
        try:
            for start in range(0, len(jobs), 1000):
                await q.addBulk([
                    {"name": c.JOB_NAME, "data": data, "opts": {"jobId": job_id}}
                    for data, job_id in jobs[start : start + 1000]
                ])  # fmt: skip
        finally:
            await q.close()

    asyncio.run(add())


@dataclass(frozen=True)
class TlsFiles:
    """A CA and a server cert (SAN 127.0.0.1) for Redis servers that speak only TLS."""

    ca: str
    cert: str
    key: str

    def server_args(self) -> list[str]:
        """A server's TLS options: no client certs asked for, replication over TLS too."""
        return [
            "--tls-cert-file", self.cert, "--tls-key-file", self.key, "--tls-ca-cert-file", self.ca,
            "--tls-auth-clients", "no", "--tls-replication", "yes",
        ]  # fmt: skip

    def sentinel_conf(self, tls_port: int) -> str:
        """A sentinel's lines to reach TLS-only servers. With ``tls-replication`` it also speaks TLS
        to the other sentinels, at the ``tls_port`` it announces to them."""
        return (
            f"tls-port {tls_port}\ntls-cert-file {self.cert}\ntls-key-file {self.key}\n"
            f"tls-ca-cert-file {self.ca}\ntls-auth-clients no\ntls-replication yes\n"
        )


def _client(port: int, password: str | None, tls: TlsFiles | None, **options: Any) -> redis.Redis:
    if tls is not None:
        options.update(ssl=True, ssl_ca_certs=tls.ca)
    return redis.Redis(port=port, password=password, **options)


def _start_server(
    args: list[str], port: int, password: str | None, tls: TlsFiles | None = None
) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (deps/apt-base.txt)")
    proc = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = _client(port, password, tls, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                client.ping()
                return proc
            except redis.RedisError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server on port {port} did not start (exit {proc.poll()})"
                    ) from None
                time.sleep(0.05)
    finally:
        client.close()


class SentinelGroup:
    """A replicated Redis with failover on loopback: one master, ``replicas`` replicas, three sentinels.

    All share ``password``; each server keeps an append-only file in ``workdir``. ``url`` is the
    worker's ``redis+sentinel://`` form. The sentinels promote a replica about a second after the
    master stops answering (``down-after-milliseconds`` 1000). Used by the failover tests and the
    ``failover`` benchmark.
    """

    MASTER = "mobius"

    def __init__(
        self,
        workdir: Any,
        password: str,
        replicas: int = 2,
        sentinel_password: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        from pathlib import Path

        self.workdir, self.password, self.sentinel_password = Path(workdir), password, sentinel_password
        self.tls = tls
        self.ports = [free_port() for _ in range(replicas + 1)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        options = [f"sentinel_password={sentinel_password}"] if sentinel_password else []
        if tls is not None:
            options.append(f"ssl_ca_certs={tls.ca}")
        query = f"?{'&'.join(options)}" if options else ""
        scheme = "rediss+sentinel" if tls else "redis+sentinel"
        self.url = f"{scheme}://:{password}@{hosts}/{self.MASTER}{query}"

    def __enter__(self) -> SentinelGroup:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _dir(self, name: str) -> Any:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self) -> None:
        pw = self.password
        for i, port in enumerate(self.ports):
            listen = ["--port", "0", "--tls-port", str(port), *self.tls.server_args()] if self.tls else [
                "--port", str(port)
            ]  # fmt: skip
            args = [*listen, "--bind", "127.0.0.1", "--dir", str(self._dir(f"server-{i}"))]
            args += ["--appendonly", "yes", "--save", "", "--protected-mode", "no"]
            args += ["--requirepass", pw, "--masterauth", pw, "--repl-diskless-sync-delay", "0"]
            if i:
                args += ["--replicaof", "127.0.0.1", str(self.ports[0])]
            self.procs[port] = _start_server(args, port, pw, self.tls)
        for i, port in enumerate(self.sentinel_ports):
            conf = self._dir(f"sentinel-{i}") / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {conf.parent}\n"
                f"sentinel monitor {self.MASTER} 127.0.0.1 {self.ports[0]} 2\n"
                f"sentinel auth-pass {self.MASTER} {pw}\n"
                f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
                f"sentinel failover-timeout {self.MASTER} 10000\n"
                f"sentinel parallel-syncs {self.MASTER} 2\n"
            )
            if self.tls is not None:  # plain to clients; TLS to the servers and the other sentinels
                conf.write_text(conf.read_text() + self.tls.sentinel_conf(free_port()))
            if self.sentinel_password:  # clients and the other sentinels must authenticate
                sp = self.sentinel_password
                conf.write_text(conf.read_text() + f"requirepass {sp}\nsentinel sentinel-pass {sp}\n")
            self.procs[port] = _start_server([str(conf), "--sentinel"], port, self.sentinel_password)
        deadline = time.monotonic() + 20
        while not self._settled():
            if time.monotonic() > deadline:
                raise RuntimeError("the sentinels did not find the master and its replicas within 20 s")
            time.sleep(0.1)

    def sentinel(self, index: int = 0) -> redis.Redis:
        return redis.Redis(
            port=self.sentinel_ports[index], password=self.sentinel_password, decode_responses=True,
            socket_timeout=2,
        )  # fmt: skip

    def _settled(self) -> bool:
        """Every sentinel sees the master, its replicas and the others; every replica is in sync."""
        try:
            for port in self.ports[1:]:
                with self.client(port) as replica:
                    if replica.info("replication").get("master_link_status") != "up":
                        return False
            for i in range(3):
                with self.sentinel(i) as s:
                    info = s.sentinel_master(self.MASTER)
                    replicas, others = int(info.get("num-slaves", 0)), int(info["num-other-sentinels"])
                    if replicas < len(self.ports) - 1 or others < 2:
                        return False
        except redis.RedisError:
            return False
        return True

    def master_port(self) -> int:
        """The master's port, as the first sentinel says now."""
        with self.sentinel() as s:
            _, port = s.sentinel_get_master_addr_by_name(self.MASTER)
        return int(port)

    def client(self, port: int) -> redis.Redis:
        return _client(port, self.password, self.tls, decode_responses=True)

    def master_url(self) -> str:
        if self.tls is not None:
            return f"rediss://:{self.password}@127.0.0.1:{self.master_port()}?ssl_ca_certs={self.tls.ca}"
        return f"redis://:{self.password}@127.0.0.1:{self.master_port()}"

    def kill(self, port: int) -> None:
        """SIGKILL the server on ``port`` (no shutdown, no last write)."""
        self.procs[port].kill()
        self.procs[port].wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
