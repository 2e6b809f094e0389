"""Queue-depth autoscaling, end to end: real worker, Prometheus, prometheus-adapter, HPA controller.

The dev stack (as ``dev-q``, queue-depth target 10, CPU off: the local cluster has no
resource metrics) is deployed with ``pulumi up``, with the adapter's ConfigMap. The
adapter runs with the config read back from that ConfigMap. A real ``python -m worker run``
on the host reports the depth of its queue; Prometheus scrapes it as a pod of the stack's
namespace. With the queue paused, 20 plain and 20 prioritised jobs are 40 waiting: the
HPA must want ceil(40 / 10) = 4 pods (2 if prioritised jobs were not counted). A second
queue's backlog in another namespace must not count. Resuming the queue drains it, and
the HPA steps down only after its stabilization window.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bullmq import Queue
from e2e_kit import ScratchProject, dev_stack_as, drop_stack, kubectl_json, pulumi_run

from bench.run_suite import tiny_png
from bench.worker_proc import spawn, worker_env
from infra.manifests.scaling.adapter import CONFIG_KEY
from infra.tools.local.addons.metrics_adapter import MetricsStack, Target
from infra.tools.local.cluster import control_plane
from infra.tools.local.cluster.kube import wait_until
from tests.servers import RedisServer, free_port, shared_redis_server  # noqa: F401 (registers `redis_server`)
from worker import constants as c

pytestmark = pytest.mark.timeout(600)

STACK, NAMESPACE, QUEUE = "dev-q", "preview-dev-q", "scale-q"
TARGET, MAX_REPLICAS, WINDOW = 10, 6, 12
PLAIN, PRIORITISED = 20, 20
WANT = math.ceil((PLAIN + PRIORITISED) / TARGET)


def stack_file(text: str) -> str:
    autoscaling = (
        "    cpuTarget: null\n"
        f"    queueDepthTarget: {TARGET}\n"
        f"    scaleDownWindowSeconds: {WINDOW}\n"
        "    adapterConfig: {namespace: monitoring, name: prometheus-adapter}\n"
    )
    return dev_stack_as(text, NAMESPACE, QUEUE, MAX_REPLICAS, autoscaling)


def jobs(prefix: str, count: int) -> list[dict[str, Any]]:
    source = {"inline": tiny_png()}
    outputs = [{"name": "thumb", "format": "webp", "width": 32, "height": 32}]
    data = [
        {"jobId": f"{prefix}{i}", "dryRun": True, "source": source, "outputs": outputs} for i in range(count)
    ]
    return [{"name": c.JOB_NAME, "data": d, "opts": {"jobId": d["jobId"]}} for d in data]


async def fill(url: str, queue: str, plain: int, prioritised: int) -> None:
    """Pause ``queue`` and add ``plain`` jobs and ``prioritised`` ones with a priority."""
    q = Queue(queue, {"connection": url, "prefix": c.BULL_PREFIX})
    try:
        await q.pause()
        await q.addBulk(jobs("p", plain))
        prio = jobs("h", prioritised)
        for job in prio:
            job["opts"]["priority"] = 5
        await q.addBulk(prio)
        # (BullMQ 5 keeps a paused queue's plain jobs in `wait`; older ones moved them to `paused`.)
        counts = await q.getJobCounts("wait", "paused", "prioritized")
        assert (counts["wait"] + counts["paused"], counts["prioritized"]) == (plain, prioritised), counts
    finally:
        await q.close()


async def resume(url: str, queue: str) -> None:
    q = Queue(queue, {"connection": url, "prefix": c.BULL_PREFIX})
    try:
        await q.resume()
    finally:
        await q.close()


def start_worker(url: str, queue: str, port: int, data_dir: Path) -> subprocess.Popen[str]:
    return spawn(worker_env(url, queue, str(data_dir), concurrency=4, metrics_port=port))


@pytest.fixture(scope="module")
def deployed(
    scratch_project: ScratchProject, local_cluster: control_plane.Cluster
) -> Iterator[tuple[Path, dict[str, str]]]:
    project, environ = scratch_project("queue-autoscaling")
    (project / f"Pulumi.{STACK}.yaml").write_text(stack_file((project / "Pulumi.dev.yaml").read_text()))
    pulumi_run(["stack", "init", STACK], environ, project)
    subprocess.run(["kubectl", "create", "namespace", "monitoring"], env=environ, capture_output=True)
    pulumi_run(["up", "--stack", STACK, "--yes", "--skip-preview"], environ, project)
    yield project, environ
    drop_stack(project, environ, STACK)


@pytest.fixture(scope="module")
def metrics(
    deployed: tuple[Path, dict[str, str]],
    local_cluster: control_plane.Cluster,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MetricsStack, RedisServer]]:
    """Two host workers (this stack's queue, and one of another namespace) scraped; the adapter up."""
    _, environ = deployed
    workdir = tmp_path_factory.mktemp("metrics")
    # The adapter runs with the config the stack declared, as read back from the cluster.
    declared = kubectl_json(environ, "-n", "monitoring", "get", "configmap", "prometheus-adapter")
    config = workdir / "adapter.yaml"
    config.write_text(declared["data"][CONFIG_KEY])
    ours, theirs = free_port(), free_port()
    workers = [
        start_worker(redis_server.url, QUEUE, ours, workdir / "w1"),
        start_worker(redis_server.url, QUEUE, theirs, workdir / "w2"),  # same queue name, other namespace
    ]
    stack = MetricsStack(
        local_cluster, workdir / "stack", [Target(ours, NAMESPACE), Target(theirs, "someone-else")], config,
        prometheus_port=free_port(), adapter_port=free_port(),
    )  # fmt: skip
    try:
        stack.start()
        yield stack, redis_server
    finally:
        stack.stop()
        for w in workers:
            w.terminate()
            w.wait(30)


def hpa(environ: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = kubectl_json(environ, "-n", NAMESPACE, "get", "hpa", "preview-worker-stable")
    return found


def status(environ: dict[str, str]) -> Callable[[], str]:
    """What a failed wait shows: the HPA's status."""
    return lambda: json.dumps(hpa(environ).get("status"), indent=1)


def test_the_declared_hpa_selects_this_stacks_queue(deployed: tuple[Path, dict[str, str]]) -> None:
    _, environ = deployed
    spec = hpa(environ)["spec"]
    assert [m["type"] for m in spec["metrics"]] == ["External"]
    external = spec["metrics"][0]["external"]
    assert external["metric"] == {
        "name": c.METRIC_QUEUE_DEPTH,
        "selector": {"matchLabels": {c.LABEL_STATE: "waiting", c.LABEL_QUEUE: QUEUE}},
    }
    assert external["target"] == {"type": "AverageValue", "averageValue": str(TARGET)}
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == WINDOW
    adapter = yaml.safe_load(
        kubectl_json(environ, "-n", "monitoring", "get", "configmap", "prometheus-adapter")["data"][
            CONFIG_KEY
        ]
    )
    assert adapter["externalRules"][0]["name"]["as"] == c.METRIC_QUEUE_DEPTH


def test_backlog_scales_out_and_drain_scales_back(
    deployed: tuple[Path, dict[str, str]], metrics: tuple[MetricsStack, RedisServer]
) -> None:
    _, environ = deployed
    stack, redis_server = metrics
    wait_until(
        lambda: hpa(environ).get("status", {}).get("desiredReplicas") == 1, "HPA at 1", 60, status(environ)
    )
    asyncio.run(fill(redis_server.url, QUEUE, PLAIN, PRIORITISED))
    filled = time.monotonic()

    # The adapter answers the HPA's exact question with this namespace's depth only (both workers
    # report the same 40: a sum over namespaces or pods would double it).
    selector = f"{c.LABEL_STATE}=waiting,{c.LABEL_QUEUE}={QUEUE}"

    def metric_is(value: int) -> bool:
        items = stack.external_metric(NAMESPACE, c.METRIC_QUEUE_DEPTH, selector)
        return [i["value"] for i in items] == [str(value)]

    wait_until(lambda: metric_is(PLAIN + PRIORITISED), "external metric at 40", 60, status(environ))
    took = wait_until(lambda: hpa(environ).get("status", {}).get("desiredReplicas") == WANT,
                      f"HPA wanting {WANT} pods", 60, status(environ))  # fmt: skip
    scale_out = time.monotonic() - filled
    assert (
        kubectl_json(environ, "-n", NAMESPACE, "get", "deployment", "preview-worker-stable")["spec"][
            "replicas"
        ]
        == WANT
    )
    print(f"backlog to scale-out: {scale_out:.1f}s (after the metric: {took:.1f}s)")

    asyncio.run(resume(redis_server.url, QUEUE))
    wait_until(lambda: metric_is(0), "external metric back at 0", 60, status(environ))
    drained = time.monotonic()
    # Not before the stabilization window (checked until just before it ends) ...
    while time.monotonic() - drained < WINDOW - 3:
        assert hpa(environ)["status"]["desiredReplicas"] == WANT, "scaled down inside the window"
        time.sleep(1)
    # ... and after it, back to the minimum (the scale-down policy's period counts the scale-up).
    wait_until(lambda: hpa(environ)["status"]["desiredReplicas"] == 1, "scaled back to 1", WINDOW + 30,
               status(environ))  # fmt: skip
    current = json.dumps(hpa(environ)["status"])
    assert hpa(environ)["status"]["desiredReplicas"] >= 1, current
