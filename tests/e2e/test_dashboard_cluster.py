"""The dashboard's cluster panels against the real kube-state-metrics (pinned in
infra/tools/local/toolchain/versions.py, built on demand) watching the local cluster's real
kube-apiserver: the worker Deployments of both tracks with KWOK pods, and an HPA with an External
metric target as KEDA makes. Prometheus scrapes kube-state-metrics; the pods panel's ready and
desired series and the queue-depth panel's autoscaler target answer what the API server says.

The project's own series of the same panels are proved in tests/worker/test_dashboard_queries.py.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_kit import kubectl_json, run

from infra.manifests.observability import dashboard as d
from infra.manifests.observability import panels as p
from infra.manifests.worker_deployment import deployment_name
from infra.tools.local.toolchain.build import ensure_built
from tests.servers import Prom, free_port
from worker import constants as c

# kube-state-metrics is built when it is not cached (about 6 minutes cold); cached, seconds.
pytestmark = pytest.mark.timeout(1200)

NAMESPACE = "e2e-dashboard"
REPLICAS = {c.TRACK_STABLE: 3, c.TRACK_CANARY: 1}
TARGET = 5  # the HPA's AverageValue target of the queue's waiting jobs


def deployment(track: str) -> dict[str, Any]:
    name = deployment_name(track)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": REPLICAS[track],
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                # never pulled: KWOK only pretends to run containers
                "spec": {
                    "containers": [{"name": "main", "image": "registry.invalid/nothing@sha256:" + "0" * 64}]
                },
            },
        },
    }


HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": deployment_name(c.TRACK_STABLE), "namespace": NAMESPACE},
    "spec": {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployment_name(c.TRACK_STABLE),
        },
        "minReplicas": 1,
        "maxReplicas": 6,
        "metrics": [
            {
                "type": "External",
                "external": {
                    "metric": {"name": "s0-prometheus"},
                    "target": {"type": "AverageValue", "averageValue": str(TARGET)},
                },
            }
        ],
    },
}


@pytest.fixture
def kube_state_metrics(local_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """kube-state-metrics on loopback, watching this test's namespace: its ``host:port``."""
    binary = ensure_built("kube-state-metrics")
    port = free_port()
    argv = [binary, f"--kubeconfig={local_env['KUBECONFIG']}", "--host=127.0.0.1", f"--port={port}"]
    argv += [f"--telemetry-port={free_port()}", "--telemetry-host=127.0.0.1"]
    argv += ["--resources=deployments,horizontalpodautoscalers", f"--namespaces={NAMESPACE}"]
    with (tmp_path / "ksm.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "ksm.log").read_text()
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_pods_and_autoscaler_panels_answer_from_kube_state_metrics(
    local_cluster: Any, local_env: dict[str, str], kube_state_metrics: str, tmp_path: Path
) -> None:
    run(["kubectl", "create", "namespace", NAMESPACE], local_env)
    manifests = {"apiVersion": "v1", "kind": "List", "items": [*map(deployment, REPLICAS), HPA]}
    run(["kubectl", "apply", "-f", "-"], local_env, stdin=json.dumps(manifests))
    for track in REPLICAS:
        status = ["kubectl", "-n", NAMESPACE, "rollout", "status", f"deployment/{deployment_name(track)}"]
        run([*status, "--timeout=90s"], local_env)
    (tmp_path / "prom").mkdir()
    prom = Prom(tmp_path / "prom", [kube_state_metrics], NAMESPACE, [])
    try:
        queries = d.queries()

        def answer(title: str, index: int) -> list[dict[str, Any]]:
            expr = queries[title][index][1].replace(f"${d.NAMESPACE}", NAMESPACE)
            return prom.query(expr.replace(f"${d.QUEUE}", "any"))

        def by_deployment(result: list[dict[str, Any]]) -> dict[str, float]:
            return {r["metric"]["deployment"]: float(r["value"][1]) for r in result}

        def settled() -> tuple[dict[str, float], dict[str, float], list[dict[str, Any]], int]:
            """The panels' answers once they agree with the API server (KWOK pods turn ready)."""
            deadline = time.monotonic() + 60
            while True:
                try:
                    ready, desired, target = answer(p.PODS, 0), answer(p.PODS, 1), answer(p.QUEUE_DEPTH, 1)
                except httpx.HTTPError:  # Prometheus still starting
                    ready, desired, target = [], [], []
                hpa = kubectl_json(local_env, "-n", NAMESPACE, "get", "hpa", deployment_name(c.TRACK_STABLE))
                current = int(hpa["status"].get("currentReplicas", 0))
                want = {deployment_name(t): float(n) for t, n in REPLICAS.items()}
                pods = (by_deployment(ready), by_deployment(desired)) == (want, want)
                if pods and current and [float(r["value"][1]) for r in target] == [float(TARGET * current)]:
                    return by_deployment(ready), by_deployment(desired), target, current
                assert time.monotonic() < deadline, (ready, desired, target, hpa["status"])
                time.sleep(0.5)

        ready, desired, target, current = settled()
        for track, replicas in REPLICAS.items():
            api = kubectl_json(local_env, "-n", NAMESPACE, "get", "deployment", deployment_name(track))
            assert ready[deployment_name(track)] == api["status"]["readyReplicas"] == replicas
            assert desired[deployment_name(track)] == api["spec"]["replicas"] == replicas
        # The autoscaler's target (waiting jobs per pod) times the pods it has: one series. The HPA
        # cannot read its External metric here (no metrics adapter): it still reports its pods.
        assert current == REPLICAS[c.TRACK_STABLE]
        assert [float(r["value"][1]) for r in target] == [float(TARGET * current)]
    finally:
        prom.stop()
        run(["kubectl", "delete", "namespace", NAMESPACE, "--wait=false"], local_env)
