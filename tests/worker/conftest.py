"""Fixtures for the worker suite: a real redis-server, a loopback HTTP source server, sample media.

Server-backed tests FAIL (never skip) when ``redis-server`` or ``node`` is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import worker_media as media
from worker_http import SourceServer
from worker_kit import TEST_TOKEN, RedisServer, free_port

from tests.servers import shared_redis_server  # noqa: F401 (registers the `redis_server` fixture)
from worker.settings import Settings

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "node"


@pytest.fixture(scope="session")
def source_server() -> Iterator[SourceServer]:
    server = SourceServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def node_producer() -> Path:
    if shutil.which("node") is None:
        pytest.fail("node is not installed; the Node.js interop tests need it")
    if not (NODE_DIR / "node_modules" / "bullmq").is_dir():
        pytest.fail("tests/node/node_modules is missing: run `npm ci --prefix tests/node` (./dev setup does)")
    return NODE_DIR / "produce.mjs"


@pytest.fixture
def queue_name() -> str:
    return f"pv-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def input_root(tmp_path: Path) -> Path:
    root = tmp_path / "inputs"
    (root / "uploads").mkdir(parents=True)
    (root / "uploads" / "photo.jpg").write_bytes(media.jpeg(800, 600))
    return root


@pytest.fixture
def worker_env(
    redis_server: RedisServer, source_server: SourceServer, queue_name: str, tmp_path: Path, input_root: Path
) -> dict[str, str]:
    """Environment for a worker/API process: fast intervals so the suite stays quick."""
    return {
        "REDIS_URL": redis_server.url,
        "PREVIEW_QUEUE_NAME": queue_name,
        "DATA_DIR": str(tmp_path / "data"),
        "PREVIEW_INPUT_ROOT": str(input_root),
        "PREVIEW_SOURCE_HOSTS": source_server.host,
        "PREVIEW_SOURCE_PRIVATE_ADDRESSES": "allow",  # the source server is on loopback
        "PREVIEW_WORKER_CONCURRENCY": "2",
        "PREVIEW_BACKOFF_MS": "200",
        "PREVIEW_LOCK_MS": "2000",
        "PREVIEW_STALLED_INTERVAL_MS": "1000",
        "PREVIEW_RUN_RETRY_DELAY_MS": "100",
        "PREVIEW_METRICS_PORT": str(free_port()),
        "PREVIEW_URL_TIMEOUT_SECONDS": "3",
        "PREVIEW_DRAIN_SECONDS": "10",
        "PREVIEW_API_TOKENS": TEST_TOKEN,
        # This throwaway Redis holds a few jobs at a time: room for the largest default inline cap.
        "PREVIEW_REDIS_BUDGET_BYTES": str(2**40),
    }


@pytest.fixture
def settings(worker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in worker_env.items():
        monkeypatch.setenv(key, value)
    return Settings()


class WorkerProcess:
    """``python -m worker run`` as a real subprocess, its JSON log lines captured to a file."""

    def __init__(self, env: dict[str, str], logfile: Path) -> None:
        self.logfile = logfile
        self.port = int(env["PREVIEW_METRICS_PORT"])
        self._log = logfile.open("wb")
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            cwd=REPO,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 40) -> None:  # imports are slow on a loaded 2-core box
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited early ({self.proc.returncode}): {self.logfile.read_text()}")
            if any(e.get("msg") == "consumer started" for e in self.events()):
                return
            time.sleep(0.05)
        pytest.fail(f"worker not ready: {self.logfile.read_text()}")

    def events(self) -> list[dict[str, Any]]:
        import json

        out = []
        for line in self.logfile.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def spawn_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Factory: start ``python -m worker run`` processes; all are stopped at teardown."""
    procs: list[WorkerProcess] = []

    def spawn(**overrides: str) -> WorkerProcess:
        env = {**worker_env, "PREVIEW_METRICS_PORT": str(free_port()), **overrides}
        proc = WorkerProcess(env, tmp_path / f"worker-{len(procs)}.log")
        procs.append(proc)
        proc.wait_ready()
        return proc

    yield spawn
    for proc in procs:
        proc.stop()
