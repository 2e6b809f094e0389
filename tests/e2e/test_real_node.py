"""The real node (issue 31): a kubelet and containerd beside the KWOK node, running real containers.

The session's node (``real_node`` in conftest.py, which checks at the end that nothing of it is
left). Its pods run Debian's busybox from the locally built sandbox image: a readiness probe over
HTTP answers from inside the pod's own network namespace, and one that cannot answer keeps its
pod not Ready (KWOK would call both Ready). The test fails, never skips, when the node cannot start.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infra.tools.image import buildah
from infra.tools.image.registry_server import Registry
from infra.tools.local.cluster import control_plane, kube
from infra.tools.local.realnode import node, pause
from infra.tools.local.realnode.layout import (
    HOST_ADDRESS,
    NODE_ADDRESS,
    NODE_LABEL,
    NODE_NAME,
    NODE_TAINT,
    PAUSE_IMAGE,
    POD_SUBNET,
)

NAMESPACE = "real-node-test"


@pytest.fixture(scope="module")
def pushed_image(e2e_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The busybox image pushed to the loopback registry, as a digest-pinned reference."""
    archive = tmp_path_factory.mktemp("real-node-image") / "busybox.tar"
    pause.write_archive(archive, "mobius/busybox:test")
    digest = buildah.copy(f"docker-archive:{archive}", f"{e2e_registry.host}/mobius/busybox:test")
    return f"{e2e_registry.host}/mobius/busybox@{digest}"


@pytest.fixture(scope="module", autouse=True)
def namespace(real_node: node.RealNode) -> Iterator[None]:
    """This module's namespace on the session's real node (conftest.py), deleted at the end."""
    kube.kubectl(real_node.cluster.state.kubeconfig, "create", "namespace", NAMESPACE)
    yield
    kube.kubectl(real_node.cluster.state.kubeconfig, "delete", "namespace", NAMESPACE, "--wait=false")


def _get(cluster: control_plane.Cluster, *args: str) -> Any:
    return json.loads(kube.kubectl(cluster.state.kubeconfig, "get", *args, "-o", "json"))


def _pod(name: str, probe_port: int, real: bool = True, image: str = PAUSE_IMAGE) -> dict[str, Any]:
    """A busybox pod serving HTTP on 8080, whose readiness probe asks ``probe_port``."""
    key, value, effect = NODE_TAINT
    serve = "mkdir -p /www && echo ok > /www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www"
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "web",
                "image": image,
                "imagePullPolicy": "Never" if image == PAUSE_IMAGE else "Always",
                "command": ["/bin/busybox", "sh", "-c", serve],
                "readinessProbe": {
                    "httpGet": {"path": "/", "port": probe_port},
                    "periodSeconds": 1,
                    "failureThreshold": 1,
                },
            }
        ],
        "terminationGracePeriodSeconds": 1,
    }
    if real:
        spec["nodeSelector"] = {NODE_LABEL[0]: NODE_LABEL[1]}
        spec["tolerations"] = [{"key": key, "operator": "Equal", "value": value, "effect": effect}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def _condition(pod: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in pod["status"].get("conditions", []) if c["type"] == kind), None)


def test_node_registers_ready_with_its_label_taint_and_address(real_node: node.RealNode) -> None:
    got = _get(real_node.cluster, "node", NODE_NAME)
    ready = next(c for c in got["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    assert got["metadata"]["labels"][NODE_LABEL[0]] == NODE_LABEL[1]
    key, value, effect = NODE_TAINT
    assert {"key": key, "value": value, "effect": effect} in got["spec"]["taints"]
    assert {"type": "InternalIP", "address": NODE_ADDRESS} in got["status"]["addresses"]
    assert got["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def test_pods_run_there_only_when_they_ask_and_ready_means_the_probe_answered(
    real_node: node.RealNode, pushed_image: str
) -> None:
    cluster = real_node.cluster
    # "answers" is pulled by digest from the loopback registry, over plain HTTP, through the relay.
    answers_pod = _pod("answers", 8080, image=pushed_image)
    # "reaches-host" is Ready only once it reaches a service on the host's loopback (the registry)
    # at the host's veth address, through the bridge, the node's namespace and the relay.
    reaches = _pod("reaches-host", 8080)
    host_url = f"http://{HOST_ADDRESS}:{real_node.host_ports[0]}/v2/"
    reaches["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": ["/bin/busybox", "wget", "-q", "-O", "/dev/null", host_url]},
        "periodSeconds": 1,
    }
    pods = [answers_pod, _pod("never-answers", 9999), _pod("plain", 8080, real=False), reaches]
    kube.kubectl(
        cluster.state.kubeconfig,
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"kind": "List", "apiVersion": "v1", "items": pods}),
    )

    def running(name: str) -> dict[str, Any]:
        pod = _get(cluster, "pod", "-n", NAMESPACE, name)
        states = pod["status"].get("containerStatuses") or [{}]
        return pod if "running" in states[0].get("state", {}) else {}

    def both_running() -> bool:
        ready = [
            _condition(_get(cluster, "pod", "-n", NAMESPACE, p), "Ready") for p in ("answers", "reaches-host")
        ]
        return bool(running("never-answers")) and ready == ["True", "True"]

    describe = lambda: kube.kubectl(cluster.state.kubeconfig, "describe", "pods", "-n", NAMESPACE)  # noqa: E731
    kube.wait_until(both_running, "pods on the real node", 90, describe)
    time.sleep(3)  # several probe periods: the failing probe has been asked and has not answered
    answers = _get(cluster, "pod", "-n", NAMESPACE, "answers")
    never = _get(cluster, "pod", "-n", NAMESPACE, "never-answers")
    plain = _get(cluster, "pod", "-n", NAMESPACE, "plain")
    assert answers["spec"]["nodeName"] == never["spec"]["nodeName"] == NODE_NAME
    assert answers["status"]["hostIP"] == NODE_ADDRESS
    assert answers["status"]["containerStatuses"][0]["imageID"].endswith(pushed_image.split("@")[1])
    assert ipaddress.ip_address(answers["status"]["podIP"]) in ipaddress.ip_network(POD_SUBNET)
    assert _condition(never, "Ready") == "False", never["status"]
    assert plain["spec"]["nodeName"] == kube.FAKE_NODE  # no toleration: the KWOK node, as before
    # The API server reaches the kubelet at its address in the namespace: logs and exec work.
    logs = kube.kubectl(cluster.state.kubeconfig, "exec", "-n", NAMESPACE, "answers", "--",
                        "/bin/busybox", "cat", "/www/index.html")  # fmt: skip
    assert logs.strip() == "ok"
