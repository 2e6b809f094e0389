"""The worker's own probes and scrape endpoint, and ``python -m worker health`` as an exec probe."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from worker_kit import free_port

from worker import constants as c
from worker.metrics import Metrics
from worker.process.health import HealthServer

REPO = Path(__file__).resolve().parents[3]


async def test_liveness_readiness_metrics() -> None:
    ready = {"value": True}

    async def check() -> bool:
        if ready["value"] is None:
            raise ConnectionError("redis down")
        return bool(ready["value"])

    metrics = Metrics("canary")
    metrics.outcome("completed")
    server = HealthServer(metrics, check, "127.0.0.1", 0)
    port = await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            live = await client.get(c.LIVENESS_PATH)
            assert (live.status_code, live.json()) == (200, {"status": "ok"})
            assert (await client.get(c.READINESS_PATH)).json() == {"status": "ready", "redis": True}
            ready["value"] = None
            not_ready = await client.get(c.READINESS_PATH)
            assert (not_ready.status_code, not_ready.json()) == (503, {"status": "not ready", "redis": False})
            assert (await client.get(c.LIVENESS_PATH)).status_code == 200  # liveness never checks Redis
            scrape = await client.get(c.METRICS_PATH)
            assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
            own = 'release="local",track="canary"'
            line = f'{c.METRIC_JOB_OUTCOMES}{{outcome="completed",reason="none",{own}}} 1.0'
            assert line in scrape.text
            assert (await client.get("/nope")).status_code == 404
            assert (await client.post(c.LIVENESS_PATH)).status_code == 405
    finally:
        await server.close()


def run_probe(env: dict[str, str], *args: str) -> int:
    full = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-m", "worker", "health", *args], cwd=REPO, env=full, capture_output=True, timeout=30
    ).returncode


async def test_health_command_against_a_real_worker(spawn_worker: Any, worker_env: dict[str, str]) -> None:
    worker = spawn_worker()
    env = {**worker_env, c.ENV_METRICS_PORT: str(worker.port)}
    assert await asyncio.to_thread(run_probe, env) == 0
    assert await asyncio.to_thread(run_probe, env, "--live") == 0
    async with httpx.AsyncClient() as client:
        scrape = await client.get(f"http://127.0.0.1:{worker.port}{c.METRICS_PATH}")
    assert re.search(
        rf'{c.METRIC_QUEUE_DEPTH}{{queue="[^"]+",release="local",state="waiting",track="stable"}}',
        scrape.text,
    )
    nobody = {**worker_env, c.ENV_METRICS_PORT: str(free_port())}
    assert await asyncio.to_thread(run_probe, nobody) == 1


async def test_the_bind_address_is_a_setting(spawn_worker: Any, worker_env: dict[str, str]) -> None:
    """``PREVIEW_METRICS_HOST=::1``: the worker answers on IPv6 loopback only, and the probe finds it."""
    worker = spawn_worker(**{c.ENV_METRICS_HOST: "::1"})
    (ready,) = [e for e in worker.events() if e.get("msg") == "worker ready"]
    assert ready["metricsHost"] == "::1"
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://[::1]:{worker.port}{c.LIVENESS_PATH}")).status_code == 200
        try:
            await client.get(f"http://127.0.0.1:{worker.port}{c.LIVENESS_PATH}")
        except httpx.ConnectError:
            pass
        else:
            raise AssertionError("the health server answered on 127.0.0.1 while bound to ::1")
    env = {**worker_env, c.ENV_METRICS_PORT: str(worker.port), c.ENV_METRICS_HOST: "::1"}
    assert await asyncio.to_thread(run_probe, env, "--live") == 0
