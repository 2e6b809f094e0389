"""Backlog to scale-out on the local cluster, in both autoscaling modes measured in the same run.

A local cluster of its own (or ``--cluster``'s), a ``redis-server``, a real ``python -m worker api``
on the host (the queue-depth exporter, scraped by Debian's Prometheus as a pod of the stack's namespace),
and per mode the real metrics path: prometheus-adapter, or KEDA's operator and metrics
server. Per round and mode: ``pulumi up`` of the dev stack in that mode (queue-depth target
10, CPU off, max 6 pods), then 40 waiting jobs, then the time until the HPA wants 4 pods.
KEDA mode runs with scale-to-zero, so it also reports the time from one job to the idle
track's first pod. The reference is the adapter mode: ``keda/adapter`` < 1 is faster.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from bullmq import Queue

from bench.local_engine import local_engine
from bench.redis_kit import BenchRedis, free_port
from bench.worker_proc import spawn, worker_env
from infra.manifests.scaling.adapter import CONFIG_FILE
from infra.tools.local.addons.keda import Keda
from infra.tools.local.addons.metrics_adapter import MetricsStack
from infra.tools.local.addons.prometheus import Prometheus, Target
from infra.tools.local.cluster import control_plane, kube
from worker import constants as c

STACK, NAMESPACE, QUEUE, DEPLOYMENT = "dev", "preview-dev", "bench-scale", "preview-worker-stable"
TARGET, MAX_REPLICAS, BACKLOG, COOLDOWN = 10, 6, 40, 5
WANT = math.ceil(BACKLOG / TARGET)
MODES = ("adapter", "keda")
_P = "mobius-preview-worker:"


def stack_config(project: Path, mode: str, prometheus_url: str) -> None:
    """Rewrite the copy's dev stack file for ``mode`` (the work tree is never touched)."""
    path = project / f"Pulumi.{STACK}.yaml"
    doc = yaml.safe_load(path.read_text())
    config = doc["config"]
    config[f"{_P}replicas"] = {"min": 1, "max": MAX_REPLICAS}
    config[f"{_P}worker"] = {**config[f"{_P}worker"], "queueName": QUEUE}
    autoscaling: dict[str, Any] = {"cpuTarget": None, "queueDepthTarget": TARGET, "scaleDownWindowSeconds": 5}
    if mode == "keda":
        autoscaling["provider"] = "keda"
        autoscaling["keda"] = {
            "prometheusUrl": prometheus_url, "scaleToZero": True, "pollingIntervalSeconds": 1,
            "cooldownPeriodSeconds": COOLDOWN,
        }  # fmt: skip
    config[f"{_P}autoscaling"] = autoscaling
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _jobs(count: int, prefix: str) -> list[dict[str, Any]]:
    outputs = [{"name": "thumb", "format": "webp", "width": 32, "height": 32}]
    source = {"url": "https://example.invalid/a.png"}  # never fetched: no worker runs
    return [
        {"name": c.JOB_NAME, "data": {"jobId": f"{prefix}{i}", "dryRun": True, "source": source,
                                      "outputs": outputs}, "opts": {"jobId": f"{prefix}{i}"}}
        for i in range(count)
    ]  # fmt: skip


def _queue(url: str, action: Callable[[Queue], Any]) -> None:
    async def go() -> None:
        q = Queue(QUEUE, {"connection": url, "prefix": c.BULL_PREFIX})
        try:
            await action(q)
        finally:
            await q.close()

    asyncio.run(go())


def _kubectl(environ: dict[str, str], *args: str) -> Any:
    done = subprocess.run(["kubectl", "-n", NAMESPACE, *args, "-o", "json"], env=environ,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    return json.loads(done.stdout) if done.returncode == 0 else {}


def _replicas(environ: dict[str, str]) -> int:
    return int(_kubectl(environ, "get", "deployment", DEPLOYMENT).get("spec", {}).get("replicas", -1))


def _desired(environ: dict[str, str]) -> int | None:
    value = _kubectl(environ, "get", "hpa", DEPLOYMENT).get("status", {}).get("desiredReplicas")
    return None if value is None else int(value)


def _status(environ: dict[str, str]) -> Callable[[], str]:
    return lambda: json.dumps(_kubectl(environ, "get", "hpa", DEPLOYMENT).get("status"))


def _pulumi(environ: dict[str, str], project: Path, *args: str) -> None:
    done = subprocess.run(["pulumi", "--non-interactive", *args], cwd=project, env=environ,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"pulumi {' '.join(args)}: {(done.stdout + done.stderr)[-2000:]}")


@contextmanager
def _metrics_path(mode: str, running: control_plane.Cluster, workdir: Path, targets: list[Target],
                  prometheus_port: int) -> Iterator[None]:  # fmt: skip
    """Prometheus plus the mode's metrics server, registered as external.metrics.k8s.io."""
    if mode == "adapter":
        stack = MetricsStack(running, workdir, targets, CONFIG_FILE, prometheus_port=prometheus_port,
                             adapter_port=free_port()).start()  # fmt: skip
        try:
            yield
        finally:
            stack.stop()
        return
    prometheus = Prometheus(workdir / "prometheus", targets, prometheus_port).start()
    keda = Keda(running, workdir / "keda", grpc_port=free_port(), metrics_server_port=free_port(),
                health_port=free_port(), operator_metrics_port=free_port(),
                metrics_server_metrics_port=free_port())  # fmt: skip
    try:
        keda.start()
        yield
    finally:
        keda.stop()
        prometheus.stop()


def _round(mode: str, environ: dict[str, str], project: Path, redis_url: str) -> dict[str, float]:
    """One deploy, backlog and scale-out in ``mode``; seconds."""
    _pulumi(environ, project, "up", "--stack", STACK, "--yes", "--skip-preview")
    try:
        times: dict[str, float] = {}
        woken = 1 if mode == "keda" else 0  # the job that woke the track is part of the backlog
        if mode == "keda":
            shown = _status(environ)
            kube.wait_until(lambda: _replicas(environ) == 0, "the idle track at 0", COOLDOWN + 90, shown)
            _queue(redis_url, lambda q: q.addBulk(_jobs(1, "wake-")))
            times["wake_s"] = kube.wait_until(lambda: _replicas(environ) >= 1, "a job waking it", 90, shown)
        else:
            kube.wait_until(lambda: _desired(environ) == 1, "the HPA at 1", 90, _status(environ))
        started = time.monotonic()
        _queue(redis_url, lambda q: q.addBulk(_jobs(BACKLOG - woken, "b-")))
        kube.wait_until(lambda: _desired(environ) == WANT, f"the HPA wanting {WANT}", 180, _status(environ))
        times["scale_out_s"] = time.monotonic() - started
        return times
    finally:
        _queue(redis_url, lambda q: q.obliterate({"force": True}))
        _pulumi(environ, project, "destroy", "--stack", STACK, "--yes")


def run(rounds: int, shared: Path | None = None) -> dict[str, Any]:
    """Median seconds from backlog to scale-out per mode (and KEDA's wake from zero), on the running
    cluster of state folder ``shared`` if given."""
    times: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with local_engine("bench-scaling-", shared) as ws, BenchRedis() as redis:
        api_port, prometheus_port = free_port(), free_port()
        api = spawn(worker_env(redis.url, QUEUE, str(ws.root / "data"), api_port=api_port), command="api")
        try:
            _pulumi(ws.environ, ws.project, "stack", "init", STACK)
            targets = [Target(api_port, NAMESPACE)]
            for index in range(rounds):
                for mode in MODES:  # interleaved, so drift hits both alike
                    stack_config(ws.project, mode, f"http://127.0.0.1:{prometheus_port}")
                    folder = ws.root / f"{mode}-{index}"
                    with _metrics_path(mode, ws.cluster, folder, targets, prometheus_port):
                        times[mode].append(_round(mode, ws.environ, ws.project, redis.url))
        finally:
            api.terminate()
            api.wait(30)
    median = {
        mode: {key: statistics.median(t[key] for t in times[mode]) for key in times[mode][0]}
        for mode in MODES
    }
    ratio = median["keda"]["scale_out_s"] / median["adapter"]["scale_out_s"]
    return {"rounds": rounds, "backlog": BACKLOG, "want": WANT, "median": median, "all": times,
            "ratio_keda_adapter": ratio}  # fmt: skip
