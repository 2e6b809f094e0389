"""The real node (issue 31): a kubelet and containerd beside the KWOK node, running real containers.

The session's node (``real_node`` in conftest.py, which checks at the end that nothing of it is
left, kube-proxy included). Its pods run Debian's busybox from the locally built sandbox image: a
readiness probe over HTTP answers from inside the pod's own network namespace, and one that cannot
answer keeps its pod not Ready (KWOK would call both Ready). A ClusterIP Service reaches its pod
through kube-proxy's rules in the node's namespace. The test fails, never skips, when the node
cannot start.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infra.tools.image import buildah
from infra.tools.image.registry_server import Registry
from infra.tools.local.cluster import control_plane, kube
from infra.tools.local.realnode import netns, node, pause
from infra.tools.local.realnode.layout import (
    HOST_ADDRESS,
    NETNS,
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
    """A busybox pod serving HTTP on 8080 (``/`` says ok, ``/name`` its name), whose readiness probe
    asks ``probe_port``."""
    key, value, effect = NODE_TAINT
    serve = ("mkdir -p /www && echo ok > /www/index.html && hostname > /www/name "
             "&& exec /bin/busybox httpd -f -p 8080 -h /www")  # fmt: skip
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


def _iptables_save(*netns_exec: str) -> str:
    """Every table of Debian's iptables (nft and legacy), in the host's namespace or via ``ip netns exec``."""
    return "".join(
        subprocess.run([*netns_exec, save], capture_output=True, text=True, check=True, timeout=30).stdout
        for save in ("iptables-nft-save", "iptables-legacy-save")
    )


def test_a_cluster_ip_service_reaches_its_pod_through_kube_proxy_and_follows_a_replacement(
    real_node: node.RealNode,
) -> None:
    cluster, config = real_node.cluster, real_node.cluster.state.kubeconfig
    # kube-proxy runs in the node's namespace, never the host's: its rules are that namespace's.
    proxy_pid = real_node.status()["kube-proxy"]
    assert proxy_pid is not None
    assert os.stat(f"/proc/{proxy_pid}/ns/net").st_ino == os.stat(netns.path(NETNS)).st_ino
    assert os.stat(f"/proc/{proxy_pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino

    def backend(name: str) -> dict[str, Any]:
        pod = _pod(name, 8080)
        pod["metadata"]["labels"] = {"app": "svc-web"}
        return pod

    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc-web", "namespace": NAMESPACE},
        "spec": {"selector": {"app": "svc-web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    items = [service, backend("svc-web-1"), _pod("svc-client", 8080)]
    manifest = json.dumps({"kind": "List", "apiVersion": "v1", "items": items})
    kube.kubectl(config, "apply", "-f", "-", stdin=manifest)
    cluster_ip = _get(cluster, "service", "-n", NAMESPACE, "svc-web")["spec"]["clusterIP"]
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network(control_plane.SERVICE_CIDR)
    describe = lambda: kube.kubectl(config, "describe", "pods,endpointslices", "-n", NAMESPACE)  # noqa: E731

    def ready(*names: str) -> bool:
        return all(_condition(_get(cluster, "pod", "-n", NAMESPACE, n), "Ready") == "True" for n in names)

    def fetch() -> str:
        """The backend's name, fetched by the client pod at the Service's ClusterIP (or wget's error).

        ``timeout``, not wget's ``-T``: Debian's static busybox 1.35 crashes on ``-T``."""
        fetch = f"/bin/busybox timeout 3 /bin/busybox wget -q -O - http://{cluster_ip}/name 2>&1 || true"
        argv = ["exec", "-n", NAMESPACE, "svc-client", "--", "/bin/busybox", "sh", "-c", fetch]
        return kube.kubectl(config, *argv).strip()

    kube.wait_until(lambda: ready("svc-web-1", "svc-client"), "the Service's pods", 60, describe)
    kube.wait_until(lambda: fetch() == "svc-web-1", f"svc-web-1 at {cluster_ip}", 20, fetch)
    # kube-proxy's DNAT rules for it are in the node's namespace, and nothing of it on the host's tables.
    assert f"{NAMESPACE}/svc-web" in _iptables_save("ip", "netns", "exec", NETNS)
    assert "KUBE-" not in _iptables_save()

    # The backing pod is replaced: with no endpoint the ClusterIP refuses (kube-proxy's REJECT
    # rule), then it reaches the new pod only.
    kube.kubectl(config, "delete", "pod", "-n", NAMESPACE, "svc-web-1", "--wait=false")
    kube.wait_until(lambda: "refused" in fetch(), f"{cluster_ip} refusing with no endpoint", 20, fetch)
    kube.kubectl(config, "apply", "-f", "-", stdin=json.dumps(backend("svc-web-2")))
    kube.wait_until(lambda: ready("svc-web-2"), "the replacement pod", 60, describe)
    kube.wait_until(lambda: fetch() == "svc-web-2", f"svc-web-2 at {cluster_ip}", 20, fetch)
    assert [fetch() for _ in range(3)] == ["svc-web-2"] * 3
