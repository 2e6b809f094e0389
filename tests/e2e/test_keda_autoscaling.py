"""KEDA mode, end to end: real KEDA operator and metrics server, Prometheus, job API, HPA controller.

The dev stack (as ``dev-k``) is deployed with ``pulumi up`` in ``provider: keda`` mode with
scale-to-zero: a ScaledObject for the stable track whose Prometheus trigger KEDA's operator
runs against a real Prometheus. No worker runs: the only exporter of the queue depth is a real
``python -m worker api`` on the host, scraped as a pod of the stack's namespace, as the
job API's pods are in a cluster while every worker is scaled to zero.

What must hold: the idle track goes to 0 pods after the cooldown; one job wakes it to 1; a
backlog of 40 (half of them prioritised) makes the HPA that KEDA owns want ceil(40 / 10) = 4,
read through KEDA's metrics server and the aggregation layer; a drained queue takes the track
back to 0 after the cooldown.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bullmq import Queue
from e2e_kit import ScratchProject, dev_stack_as, drop_stack, kubectl_json, pulumi_run

from bench.worker_proc import spawn, worker_env
from infra.errors import VerifyError
from infra.manifests.scaling.scaled_object import TRIGGER_NAME
from infra.tools.local.addons.keda import Keda
from infra.tools.local.addons.prometheus import Prometheus, Target
from infra.tools.local.cluster import control_plane
from infra.tools.local.cluster.kube import http_ok, wait_until
from infra.tools.verify import checks as verify
from tests.servers import RedisServer, free_port, shared_redis_server  # noqa: F401 (registers `redis_server`)
from worker import constants as c

pytestmark = pytest.mark.timeout(600)

STACK, NAMESPACE, QUEUE = "dev-k", "preview-dev-k", "keda-q"
DEPLOYMENT = "preview-worker-stable"
TARGET, MAX_REPLICAS, COOLDOWN, WINDOW = 10, 6, 8, 5
BACKLOG = 40
WANT = math.ceil(BACKLOG / TARGET)


def stack_file(text: str, prometheus_port: int) -> str:
    """The dev stack file made a KEDA one whose operator queries the Prometheus on ``prometheus_port``."""
    autoscaling = (
        "    provider: keda\n"
        "    cpuTarget: null\n"
        f"    queueDepthTarget: {TARGET}\n"
        f"    scaleDownWindowSeconds: {WINDOW}\n"
        "    keda:\n"
        f"      prometheusUrl: http://127.0.0.1:{prometheus_port}\n"
        "      scaleToZero: true\n"
        "      pollingIntervalSeconds: 1\n"
        f"      cooldownPeriodSeconds: {COOLDOWN}\n"
    )
    return dev_stack_as(text, NAMESPACE, QUEUE, MAX_REPLICAS, autoscaling)


def job(job_id: str, priority: int = 0) -> dict[str, Any]:
    outputs = [{"name": "thumb", "format": "webp", "width": 32, "height": 32}]
    data = {
        "jobId": job_id,
        "dryRun": True,
        "source": {"url": "https://example.invalid/a.png"},
        "outputs": outputs,
    }
    opts: dict[str, Any] = {"jobId": job_id, **({"priority": priority} if priority else {})}
    return {"name": c.JOB_NAME, "data": data, "opts": opts}


async def add(url: str, batch: list[dict[str, Any]]) -> None:
    q = Queue(QUEUE, {"connection": url, "prefix": c.BULL_PREFIX})
    try:
        await q.addBulk(batch)
    finally:
        await q.close()


async def drain(url: str) -> None:
    q = Queue(QUEUE, {"connection": url, "prefix": c.BULL_PREFIX})
    try:
        await q.drain()
        assert (await q.getJobCounts("wait", "prioritized")) == {"wait": 0, "prioritized": 0}
    finally:
        await q.close()


@pytest.fixture(scope="module")
def scaling(
    scratch_project: ScratchProject,
    local_cluster: control_plane.Cluster,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployed]:
    """The job API scraped by Prometheus, KEDA up, then the stack deployed."""
    workdir = tmp_path_factory.mktemp("keda")
    # Ports are picked here, just before use, not at import: a port picked at collection time
    # sat free for the half hour before this module ran and an ephemeral client socket took it.
    api_port, prometheus_port = free_port(), free_port()
    api = spawn(worker_env(redis_server.url, QUEUE, str(workdir / "data"), api_port=api_port), command="api")
    prometheus = Prometheus(workdir / "prometheus", [Target(api_port, NAMESPACE)], prometheus_port)
    keda = Keda(
        local_cluster, workdir / "keda", grpc_port=free_port(), metrics_server_port=free_port(),
        health_port=free_port(), operator_metrics_port=free_port(), metrics_server_metrics_port=free_port(),
    )  # fmt: skip
    project, environ = scratch_project("keda-autoscaling")
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{api_port}{c.METRICS_PATH}"), "the job API", 30,
                   lambda: f"exit {api.poll()}")  # fmt: skip
        prometheus.start()
        keda.start()
        dev = (project / "Pulumi.dev.yaml").read_text()
        (project / f"Pulumi.{STACK}.yaml").write_text(stack_file(dev, prometheus_port))
        pulumi_run(["stack", "init", STACK], environ, project)
        pulumi_run(["up", "--stack", STACK, "--yes", "--skip-preview"], environ, project)
        try:
            yield Deployed(project, environ, redis_server)
        finally:
            print(keda.log_tail(10))
            drop_stack(project, environ, STACK, finalized=("ScaledObject",))
    finally:
        keda.stop()
        prometheus.stop()
        api.terminate()
        api.wait(30)


@dataclass(frozen=True)
class Deployed:
    project: Path
    environ: dict[str, str]
    redis: RedisServer


def replicas(environ: dict[str, str]) -> int:
    return int(kubectl_json(environ, "-n", NAMESPACE, "get", "deployment", DEPLOYMENT)["spec"]["replicas"])


def state(environ: dict[str, str]) -> Callable[[], str]:
    """What a failed wait shows: the ScaledObject's conditions and the HPA's status."""

    def show() -> str:
        so = kubectl_json(environ, "-n", NAMESPACE, "get", "scaledobject", DEPLOYMENT).get("status", {})
        argv = ["kubectl", "-n", NAMESPACE, "get", "hpa", DEPLOYMENT, "-o", "json"]
        hpa = subprocess.run(argv, env=environ, capture_output=True, text=True).stdout
        return json.dumps(so.get("conditions"), indent=1) + "\n" + hpa[-1500:]

    return show


def desired(environ: dict[str, str]) -> int | None:
    found = kubectl_json(environ, "-n", NAMESPACE, "get", "hpa", DEPLOYMENT)
    value = found.get("status", {}).get("desiredReplicas")
    return int(value) if value is not None else None


def test_the_scaled_object_read_back_is_the_declared_one(scaling: Deployed) -> None:
    environ = scaling.environ
    found = kubectl_json(environ, "-n", NAMESPACE, "get", "scaledobject", DEPLOYMENT)
    spec = found["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["cooldownPeriod"]) == (
        0,
        MAX_REPLICAS,
        COOLDOWN,
    )
    [trigger] = spec["triggers"]
    assert trigger["name"] == TRIGGER_NAME
    assert trigger["metadata"]["query"] == (
        f'max({c.METRIC_QUEUE_DEPTH}{{namespace="{NAMESPACE}",queue="{QUEUE}",state="waiting"}})'
    )
    assert trigger["metadata"]["threshold"] == str(TARGET)
    # KEDA accepted it and made the HPA it owns, named after the Deployment.
    wait_until(
        lambda: any(
            cond["type"] == "Ready" and cond["status"] == "True"
            for cond in kubectl_json(environ, "-n", NAMESPACE, "get", "scaledobject", DEPLOYMENT)
            .get("status", {})
            .get("conditions", [])
        ),
        "the ScaledObject Ready", 60, state(environ),
    )  # fmt: skip
    hpa = kubectl_json(environ, "-n", NAMESPACE, "get", "hpa", DEPLOYMENT)
    assert hpa["metadata"]["ownerReferences"][0]["kind"] == "ScaledObject"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == WINDOW


def test_idle_to_zero_a_job_wakes_it_a_backlog_scales_out_and_drained_back_to_zero(
    scaling: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ, redis_server = scaling.environ, scaling.redis
    wait_until(lambda: replicas(environ) == 0, "the idle track at 0 pods", COOLDOWN + 60, state(environ))
    # `python -m infra verify` passes a track KEDA scaled to zero, and only in scale-to-zero mode.
    outputs = json.loads(
        pulumi_run(["stack", "output", "--json", "--stack", STACK], environ, scaling.project)
    )
    for key in ("PATH", "KUBECONFIG"):
        monkeypatch.setenv(key, environ[key])
    target = verify.Target(STACK, scaling.project, "", "", 10, outputs)
    assert f"{DEPLOYMENT} 0/0" in verify.check_deployments(target)
    target.outputs = {**outputs, "scaleToZero": False}
    with pytest.raises(VerifyError, match=f"{DEPLOYMENT}: 0/0 pods ready"):
        verify.check_deployments(target)

    asyncio.run(add(redis_server.url, [job("wake-0")]))
    queued = time.monotonic()
    wait_until(lambda: replicas(environ) >= 1, "a job waking the track", 60, state(environ))
    woke = time.monotonic() - queued

    batch = [job(f"b-{i}", priority=5 if i % 2 else 0) for i in range(1, BACKLOG)]  # 39 more: 40 waiting
    asyncio.run(add(redis_server.url, batch))
    filled = time.monotonic()
    wait_until(lambda: desired(environ) == WANT, f"KEDA's HPA wanting {WANT} pods", 90, state(environ))
    scale_out = time.monotonic() - filled
    wait_until(lambda: replicas(environ) == WANT, f"the Deployment at {WANT}", 30, state(environ))
    print(f"KEDA: job to wake {woke:.1f}s, backlog to scale-out {scale_out:.1f}s")

    asyncio.run(drain(redis_server.url))
    drained = time.monotonic()
    # Not before the cooldown (checked until just before it ends) ...
    while time.monotonic() - drained < COOLDOWN - 3:
        assert replicas(environ) >= 1, "scaled to zero inside the cooldown"
        time.sleep(1)
    # ... and after it, back to zero.
    wait_until(lambda: replicas(environ) == 0, "the drained track at 0 pods", COOLDOWN + 60, state(environ))
