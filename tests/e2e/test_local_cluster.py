"""The local control plane does what the Pulumi program needs: nodes, Deployments with ready pods, CRDs."""

import ipaddress
import json
import os
import sys
from pathlib import Path

from e2e_kit import kubectl_json, run

from infra.tools.local import layout
from infra.tools.local.cluster import kube
from infra.tools.local.cluster.control_plane import Cluster
from infra.tools.local.layout import REPO_ROOT, StateDir
from infra.tools.local.realnode.layout import NODE_NAME

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "kwok-probe", "namespace": "e2e-kwok"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "kwok-probe"}},
        "template": {
            "metadata": {"labels": {"app": "kwok-probe"}},
            # never pulled: KWOK only pretends to run containers
            "spec": {
                "containers": [{"name": "main", "image": "registry.invalid/nothing@sha256:" + "0" * 64}]
            },
        },
    },
}


def test_the_fake_node_is_ready(local_cluster: Cluster, local_env: dict[str, str]) -> None:
    node = kubectl_json(local_env, "get", "node", kube.FAKE_NODE)
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert node["metadata"]["annotations"][kube.KWOK_NODE_ANNOTATION] == "fake"


def test_a_deployment_becomes_available_with_kwok_pods(
    local_cluster: Cluster, local_env: dict[str, str]
) -> None:
    run(["kubectl", "create", "namespace", "e2e-kwok"], local_env)
    apply = run(["kubectl", "apply", "-f", "-"], local_env, stdin=json.dumps(DEPLOYMENT))
    assert apply.strip() == "deployment.apps/kwok-probe created"
    run(
        ["kubectl", "-n", "e2e-kwok", "rollout", "status", "deployment/kwok-probe", "--timeout=90s"],
        local_env,
    )
    deployment = kubectl_json(local_env, "-n", "e2e-kwok", "get", "deployment", "kwok-probe")
    assert deployment["status"]["availableReplicas"] == 2
    available = [c for c in deployment["status"]["conditions"] if c["type"] == "Available"]
    assert available[0]["status"] == "True"
    pods = kubectl_json(local_env, "-n", "e2e-kwok", "get", "pods", "-l", "app=kwok-probe")["items"]
    assert len(pods) == 2
    pod_range = ipaddress.ip_network("10.244.0.0/24")
    for pod in pods:
        assert pod["spec"]["nodeName"] == kube.FAKE_NODE
        assert pod["status"]["phase"] == "Running"
        assert ipaddress.ip_address(pod["status"]["podIP"]) in pod_range
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"


def test_service_accounts_get_tokens(local_cluster: Cluster, local_env: dict[str, str]) -> None:
    run(["kubectl", "create", "namespace", "e2e-sa"], local_env)
    run(
        ["kubectl", "-n", "e2e-sa", "wait", "--for=create", "serviceaccount/default", "--timeout=30s"],
        local_env,
    )
    token = run(["kubectl", "-n", "e2e-sa", "create", "token", "default"], local_env).strip()
    assert token.count(".") == 2  # a signed JWT from the service-account key pair


def test_the_programs_crds_are_established(local_cluster: Cluster, local_env: dict[str, str]) -> None:
    files = kube.crd_files()
    assert files, f"no CRD manifests in {kube.CRD_DIR}"
    crds = kubectl_json(local_env, "get", "crd")["items"]
    established = {
        crd["metadata"]["name"]
        for crd in crds
        if any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    }
    for name in ("servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"):
        assert name in established


def test_plain_kubectl_works_after_eval_of_local_env(local_cluster: Cluster, local_state: StateDir) -> None:
    environ = {**os.environ, layout.ENV_LOCAL_STATE: str(local_state.root)}
    script = (
        f'eval "$({sys.executable} -m infra local env)" && command -v kubectl && kubectl get nodes -o name'
    )
    lines = run(["bash", "-c", script], environ, cwd=Path(REPO_ROOT)).splitlines()
    assert lines[0] == str(layout.toolchain_cache() / "bin" / "kubectl")
    # The KWOK node, and the real node once an earlier test of the session started it (conftest.py).
    assert f"node/{kube.FAKE_NODE}" in lines[1:] and set(lines[1:]) <= {
        f"node/{kube.FAKE_NODE}",
        f"node/{NODE_NAME}",
    }
