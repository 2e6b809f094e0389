"""Queue-depth autoscaling on the local cluster: a real Prometheus and prometheus-adapter.

:class:`MetricsStack` starts Debian's ``prometheus`` scraping worker ``/metrics``
endpoints on loopback (each target labelled with the namespace it stands for, as
prometheus-operator's ServiceMonitor labels a pod's series), and the built
prometheus-adapter serving ``external.metrics.k8s.io`` from it. The adapter is
registered with the API server's aggregation layer the way a real install does it
(an APIService whose CA is the cluster CA), except that its Service is an
``ExternalName`` of ``localhost``: the adapter runs on the host, and the API server
refuses loopback addresses in Endpoints but follows an ExternalName (see
docs/autoscaling.md). The kube-controller-manager's HPA controller then reads the
metric through the API server exactly as in a real cluster.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra.errors import KubeError, ToolchainError
from infra.local import kube, procs
from infra.local.cluster import Cluster
from infra.local.toolchain import tool_path
from infra.local.versions import tool

ADAPTER_NAMESPACE = "monitoring"
ADAPTER_SERVICE = "prometheus-adapter"
EXTERNAL_GROUP = "external.metrics.k8s.io"
EXTERNAL_VERSION = "v1beta1"
SCRAPE_SECONDS = 1
#: How often the adapter re-lists the series it can serve (its default is 10 min: a new
#: namespace's queue would be unknown that long).
RELIST_SECONDS = 2


@dataclass(frozen=True)
class Target:
    """One ``/metrics`` endpoint on loopback and the namespace its series are labelled with."""

    port: int
    namespace: str


def prometheus_config(targets: list[Target], scrape_seconds: int = SCRAPE_SECONDS) -> str:
    """A Prometheus config scraping each target every ``scrape_seconds`` with its namespace label."""
    jobs = [
        {
            "job_name": f"preview-worker-{t.port}",
            "static_configs": [{"targets": [f"127.0.0.1:{t.port}"], "labels": {"namespace": t.namespace}}],
        }
        for t in targets
    ]
    settings = {"scrape_interval": f"{scrape_seconds}s", "scrape_timeout": f"{scrape_seconds}s"}
    return json.dumps({"global": settings, "scrape_configs": jobs}, indent=2)  # JSON is YAML


def api_service(port: int, ca_bundle: str) -> dict[str, object]:
    """The APIService that routes ``external.metrics.k8s.io`` to the adapter."""
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": f"{EXTERNAL_VERSION}.{EXTERNAL_GROUP}"},
        "spec": {
            "group": EXTERNAL_GROUP,
            "version": EXTERNAL_VERSION,
            "service": {"namespace": ADAPTER_NAMESPACE, "name": ADAPTER_SERVICE, "port": port},
            "caBundle": ca_bundle,
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }


def adapter_service() -> dict[str, object]:
    """The adapter's Service: an ExternalName of ``localhost`` (the adapter runs on the host)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": ADAPTER_SERVICE, "namespace": ADAPTER_NAMESPACE},
        "spec": {"type": "ExternalName", "externalName": "localhost"},
    }


@dataclass
class MetricsStack:
    """Prometheus + prometheus-adapter for one local cluster (``start`` / ``stop``)."""

    cluster: Cluster
    workdir: Path
    targets: list[Target]
    adapter_config: Path
    prometheus_port: int = 0
    adapter_port: int = 0
    _procs: list[procs.Proc] = field(default_factory=list)

    @property
    def prometheus_url(self) -> str:
        """Where Prometheus answers queries."""
        return f"http://127.0.0.1:{self.prometheus_port}"

    def _proc(self, name: str, argv: list[str]) -> procs.Proc:
        return procs.Proc(name, tuple(argv), self.workdir / f"{name}.pid", self.workdir / f"{name}.log")

    def start(self, timeout: float = 90) -> MetricsStack:
        """Start both, register the adapter and wait until the API server reports it Available."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise ToolchainError("no `prometheus` on PATH: install the Debian package prometheus")
        adapter = tool_path(tool("prometheus-adapter"))
        if not adapter.exists():
            raise ToolchainError("prometheus-adapter is not built: run deps/setup.d/45-addons.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(prometheus_config(self.targets))
        prom = self._proc("prometheus", [
            binary, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}", "--log.level=warn",
        ])  # fmt: skip
        self._procs.append(prom)
        procs.start(prom)
        kube.wait_until(lambda: kube.http_ok(f"{self.prometheus_url}/-/ready"), "prometheus", 30,
                        lambda: procs.log_tail(prom))  # fmt: skip
        pki, kubeconfig = self.cluster.pki, str(self.cluster.state.kubeconfig)
        dns = f"{ADAPTER_SERVICE}.{ADAPTER_NAMESPACE}.svc"
        cert, key = pki.serving_cert(ADAPTER_SERVICE, (dns, "localhost"))
        proc = self._proc("prometheus-adapter", [
            str(adapter), f"--secure-port={self.adapter_port}", "--bind-address=127.0.0.1",
            f"--tls-cert-file={cert}", f"--tls-private-key-file={key}",
            f"--lister-kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", f"--prometheus-url={self.prometheus_url}",
            f"--metrics-relist-interval={RELIST_SECONDS}s", f"--config={self.adapter_config}", "--v=1",
        ])  # fmt: skip
        self._procs.append(proc)
        procs.start(proc)
        kc = self.cluster.state.kubeconfig
        kube.kubectl(kc, "create", "namespace", ADAPTER_NAMESPACE, check=False)
        ca = base64.b64encode(pki.ca_cert.read_bytes()).decode()
        manifests = [adapter_service(), api_service(self.adapter_port, ca)]
        kube.kubectl(kc, "apply", "--server-side", "--force-conflicts", "-f", "-",
                     stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))  # fmt: skip
        kube.wait_until(self.available, "the external metrics APIService", timeout,
                        lambda: procs.log_tail(proc))  # fmt: skip
        return self

    def available(self) -> bool:
        """Whether the API server reports the adapter's APIService Available."""
        out = kube.kubectl(self.cluster.state.kubeconfig, "get", "apiservice",
                           f"{EXTERNAL_VERSION}.{EXTERNAL_GROUP}", "-o", "json", check=False)  # fmt: skip
        try:
            conditions = json.loads(out).get("status", {}).get("conditions", [])
        except json.JSONDecodeError:
            return False
        return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)

    def query(self, promql: str) -> list[dict[str, object]]:
        """An instant query's result vector."""
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=5)
        response.raise_for_status()
        result: list[dict[str, object]] = response.json()["data"]["result"]
        return result

    def external_metric(self, namespace: str, metric: str, selector: str) -> list[dict[str, object]]:
        """What the HPA controller reads: the External metric's items, through the API server."""
        path = f"/apis/{EXTERNAL_GROUP}/{EXTERNAL_VERSION}/namespaces/{namespace}/{metric}"
        out = kube.kubectl(self.cluster.state.kubeconfig, "get", "--raw", f"{path}?labelSelector={selector}")
        items: list[dict[str, object]] = json.loads(out)["items"]
        return items

    def stop(self) -> None:
        """Unregister the adapter and stop both processes (adapter first)."""
        kc = self.cluster.state.kubeconfig
        with contextlib.suppress(KubeError):  # the cluster may already be gone
            kube.kubectl(kc, "delete", "apiservice", f"{EXTERNAL_VERSION}.{EXTERNAL_GROUP}",
                         "--ignore-not-found", check=False)  # fmt: skip
        for proc in reversed(self._procs):
            procs.stop(proc)
        self._procs.clear()
