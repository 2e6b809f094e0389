"""Real servers shared by several test suites: a free loopback port, a redis-server, a Vault dev server.

Server-backed tests FAIL (never skip) when the binary is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hvac
import hvac.exceptions
import pytest
import redis
import requests
import yaml

from bench.redis_kit import SentinelGroup, TlsFiles
from infra.tools.local.ports import free_port

__all__ = [
    "Prom",
    "RedisServer",
    "SentinelGroup",
    "TlsFiles",
    "VaultServer",
    "bearer_status",
    "free_port",
    "shared_redis_server",
    "shared_vault_server",
]

#: Built from the hashicorp/vault Go module by deps/setup.d/40-vault.sh.
VAULT_BIN = Path.home() / ".cache" / "mobius-preview-worker" / "vault" / "vault-v1.21.0"
VAULT_ROOT_TOKEN = "root-token-for-tests"


def bearer_status(url: str, token: str) -> int:
    """The HTTP status of a GET of ``url`` with ``token`` as its bearer token (0: no answer)."""
    try:
        return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2).status_code
    except httpx.HTTPError:
        return 0


class RedisServer:
    """A real redis-server on a loopback port, with AOF persistence so it can be restarted.

    With ``password``, the server requires it and ``url`` carries it.
    """

    def __init__(self, workdir: Path, password: str | None = None, extra: tuple[str, ...] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (deps/apt-base.txt); these tests need it")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.password = password
        self.url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{self.port}"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--protected-mode",
            "no",
            *(("--requirepass", self.password, "--masterauth", self.password) if self.password else ()),
            *self.extra,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    client.close()
                    return
            except redis.exceptions.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start (exit {self.proc.poll()})")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop (data persisted in the AOF), stay down a while, start again on the same port."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, decode_responses=True)


@pytest.fixture(scope="session", name="redis_server")
def shared_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (a suite registers it by importing it into its conftest)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


class VaultServer:
    """A real Vault dev server on a loopback port (in memory, unsealed, KV v2 at ``secret/``)."""

    def __init__(self, workdir: Path) -> None:
        if not VAULT_BIN.is_file():
            pytest.fail(f"{VAULT_BIN} is missing: run deps/setup.d/40-vault.sh (./dev test does)")
        self.workdir = workdir
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        log = (self.workdir / "vault.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(VAULT_BIN), "server", "-dev", f"-dev-listen-address={self.url.removeprefix('http://')}",
                f"-dev-root-token-id={VAULT_ROOT_TOKEN}", "-dev-no-store-token",
            ],
            env={"HOME": str(self.workdir), "PATH": os.environ.get("PATH", "")},
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        client = hvac.Client(url=self.url, token=VAULT_ROOT_TOKEN, timeout=2)
        deadline = time.monotonic() + timeout
        while True:
            # Not listening yet (connection refused) or still unsealing.
            with contextlib.suppress(requests.exceptions.ConnectionError, hvac.exceptions.VaultError):
                if client.sys.is_initialized() and not client.sys.is_sealed():
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"vault dev server did not start: {(self.workdir / 'vault.log').read_text()}")
            time.sleep(0.2)

    def client(self, token: str = VAULT_ROOT_TOKEN) -> hvac.Client:
        return hvac.Client(url=self.url, token=token, timeout=5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


@pytest.fixture(scope="session", name="vault_server")
def shared_vault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultServer]:
    """One real Vault dev server for the session (import it into a suite's module or conftest)."""
    server = VaultServer(tmp_path_factory.mktemp("vault-home"))
    server.start()
    yield server
    server.stop()


def project_secret(folder: Path, values: dict[str, str]) -> None:
    """Write ``values`` into ``folder`` the way the kubelet updates a mounted Secret volume.

    A stand-in for the kubelet, which this machine does not run (KWOK's pods run no
    containers): its AtomicWriter writes a fresh ``..<timestamp>`` folder, swaps the
    ``..data`` symlink to it in one rename, and each key is a symlink through ``..data``,
    so a reader sees the old set or the new one, never a mix.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / f"..{time.time_ns()}"
    stamp.mkdir()
    for name, value in values.items():
        (stamp / name).write_text(value)
    tmp = folder / "..data_tmp"
    tmp.symlink_to(stamp.name)
    old = (folder / "..data").resolve() if (folder / "..data").is_symlink() else None
    tmp.rename(folder / "..data")
    for name in values:
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    for link in folder.iterdir():  # keys gone from the Secret disappear from the volume
        if link.is_symlink() and not link.name.startswith("..") and link.name not in values:
            link.unlink()
    if old is not None:
        shutil.rmtree(old)


class Prom:
    """Debian's ``prometheus`` scraping ``targets`` every 500 ms as if in ``namespace``, evaluating
    ``rules`` every second (the dashboard's query tests)."""

    def __init__(
        self, workdir: Path, targets: list[str], namespace: str, rules: list[dict[str, Any]]
    ) -> None:
        binary = shutil.which("prometheus")
        assert binary, "the `prometheus` server is missing (Debian package prometheus; ./dev setup)"
        self.rules = workdir / "rules.yml"
        self.rules.write_text(yaml.safe_dump({"groups": rules}))
        (workdir / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": "500ms",
                        "scrape_timeout": "400ms",
                        "evaluation_interval": "1s",
                    },
                    "rule_files": [str(workdir / "rules.yml")],
                    "scrape_configs": [
                        {
                            "job_name": "preview",
                            "static_configs": [{"targets": targets, "labels": {"namespace": namespace}}],
                        }
                    ],
                }
            )
        )
        self.url = f"http://127.0.0.1:{free_port()}"
        self._log = (workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def load_rules(self, rules: list[dict[str, Any]]) -> None:
        """Replace the rule groups (SIGHUP: Prometheus rereads its configuration and rule files)."""
        self.rules.write_text(yaml.safe_dump({"groups": rules}))
        self.process.send_signal(signal.SIGHUP)

    def query(self, expr: str) -> list[dict[str, Any]]:
        # Starting, Prometheus answers 503 in plain text: an HTTPError for the caller that waits.
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = answer.raise_for_status().json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def query_range(self, expr: str, seconds: float) -> list[dict[str, Any]]:
        end = time.time()
        params = {"query": expr, "start": end - seconds, "end": end, "step": "0.5"}
        body = httpx.get(f"{self.url}/api/v1/query_range", params=params, timeout=10).json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
