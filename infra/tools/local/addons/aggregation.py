"""``external.metrics.k8s.io`` through the API server's aggregation layer, served from the host.

A real install registers its metrics server (prometheus-adapter, or KEDA's
``keda-metrics-apiserver``) as an APIService whose CA is the cluster CA. Here the server
runs on the host, so its Service is an ``ExternalName`` of ``localhost``: the API server
refuses loopback addresses in Endpoints but follows an ExternalName (docs/autoscaling.md).
The kube-controller-manager's HPA controller then reads the metric through the API
server exactly as in a real cluster. One server at a time holds the APIService.
"""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path

from infra.errors import KubeError
from infra.tools.local.cluster import kube

EXTERNAL_GROUP = "external.metrics.k8s.io"
EXTERNAL_VERSION = "v1beta1"
API_SERVICE = f"{EXTERNAL_VERSION}.{EXTERNAL_GROUP}"


def api_service(namespace: str, service: str, port: int, ca_bundle: str) -> dict[str, object]:
    """The APIService that routes ``external.metrics.k8s.io`` to ``service``."""
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": API_SERVICE},
        "spec": {
            "group": EXTERNAL_GROUP,
            "version": EXTERNAL_VERSION,
            "service": {"namespace": namespace, "name": service, "port": port},
            "caBundle": ca_bundle,
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }


def host_service(namespace: str, service: str) -> dict[str, object]:
    """The metrics server's Service: an ExternalName of ``localhost`` (it runs on the host)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service, "namespace": namespace},
        "spec": {"type": "ExternalName", "externalName": "localhost"},
    }


def register(kubeconfig: Path, ca_cert: Path, namespace: str, service: str, port: int) -> None:
    """Point the APIService at ``service`` in ``namespace`` (created if missing) on ``port``."""
    kube.kubectl(kubeconfig, "create", "namespace", namespace, check=False)
    ca = base64.b64encode(ca_cert.read_bytes()).decode()
    items = [host_service(namespace, service), api_service(namespace, service, port, ca)]
    kube.kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", "-",
                 stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))  # fmt: skip


def available(kubeconfig: Path) -> bool:
    """Whether the API server reports the APIService Available."""
    out = kube.kubectl(kubeconfig, "get", "apiservice", API_SERVICE, "-o", "json", check=False)
    try:
        conditions = json.loads(out).get("status", {}).get("conditions", [])
    except json.JSONDecodeError:
        return False
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def external_metric(kubeconfig: Path, namespace: str, metric: str, selector: str) -> list[dict[str, object]]:
    """What the HPA controller reads: the External metric's items, through the API server."""
    path = f"/apis/{EXTERNAL_GROUP}/{EXTERNAL_VERSION}/namespaces/{namespace}/{metric}"
    out = kube.kubectl(kubeconfig, "get", "--raw", f"{path}?labelSelector={selector}")
    items: list[dict[str, object]] = json.loads(out)["items"]
    return items


def unregister(kubeconfig: Path) -> None:
    """Remove the APIService (the cluster may already be gone)."""
    with contextlib.suppress(KubeError):
        kube.kubectl(kubeconfig, "delete", "apiservice", API_SERVICE, "--ignore-not-found", check=False)
