"""Queue-depth autoscaling on the local cluster: a real Prometheus and prometheus-adapter.

:class:`MetricsStack` starts Debian's ``prometheus`` (:mod:`infra.tools.local.addons.prometheus`)
scraping worker ``/metrics`` endpoints on loopback, and the built prometheus-adapter
serving ``external.metrics.k8s.io`` from it, registered with the API server's
aggregation layer (:mod:`infra.tools.local.addons.aggregation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from infra.tools.local.addons import aggregation
from infra.tools.local.addons.host_processes import HostProcesses
from infra.tools.local.addons.prometheus import Prometheus, Target
from infra.tools.local.cluster.control_plane import Cluster
from infra.tools.local.toolchain.build import addon_binary

__all__ = ["ADAPTER_NAMESPACE", "ADAPTER_SERVICE", "MetricsStack", "Target"]

ADAPTER_NAMESPACE = "monitoring"
ADAPTER_SERVICE = "prometheus-adapter"
#: How often the adapter re-lists the series it can serve (its default is 10 min: a new
#: namespace's queue would be unknown that long).
RELIST_SECONDS = 2


@dataclass
class MetricsStack:
    """Prometheus + prometheus-adapter for one local cluster (``start`` / ``stop``)."""

    cluster: Cluster
    workdir: Path
    targets: list[Target]
    adapter_config: Path
    prometheus_port: int = 0
    adapter_port: int = 0
    _prometheus: Prometheus | None = field(default=None, init=False)
    _host: HostProcesses = field(init=False)

    def __post_init__(self) -> None:
        self._host = HostProcesses(self.workdir)

    @property
    def prometheus_url(self) -> str:
        """Where Prometheus answers queries."""
        return f"http://127.0.0.1:{self.prometheus_port}"

    def start(self, timeout: float = 90) -> MetricsStack:
        """Start both, register the adapter and wait until the API server reports it Available."""
        adapter = addon_binary("prometheus-adapter")
        self._prometheus = Prometheus(self.workdir / "prometheus", self.targets, self.prometheus_port).start()
        pki, kubeconfig = self.cluster.pki, self.cluster.state.kubeconfig
        dns = f"{ADAPTER_SERVICE}.{ADAPTER_NAMESPACE}.svc"
        cert, key = pki.serving_cert(ADAPTER_SERVICE, (dns, "localhost"))
        argv = (
            adapter, f"--secure-port={self.adapter_port}", "--bind-address=127.0.0.1",
            f"--tls-cert-file={cert}", f"--tls-private-key-file={key}",
            f"--lister-kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", f"--prometheus-url={self.prometheus_url}",
            f"--metrics-relist-interval={RELIST_SECONDS}s", f"--config={self.adapter_config}", "--v=1",
        )  # fmt: skip
        proc = self._host.start(ADAPTER_SERVICE, argv, files="adapter")
        aggregation.register(kubeconfig, pki.ca_cert, ADAPTER_NAMESPACE, ADAPTER_SERVICE, self.adapter_port)
        self._host.wait(self.available, "the external metrics APIService", timeout, proc)
        return self

    def available(self) -> bool:
        """Whether the API server reports the adapter's APIService Available."""
        return aggregation.available(self.cluster.state.kubeconfig)

    def query(self, promql: str) -> list[dict[str, object]]:
        """An instant query's result vector."""
        assert self._prometheus is not None, "start() first"
        return self._prometheus.query(promql)

    def external_metric(self, namespace: str, metric: str, selector: str) -> list[dict[str, object]]:
        """What the HPA controller reads: the External metric's items, through the API server."""
        return aggregation.external_metric(self.cluster.state.kubeconfig, namespace, metric, selector)

    def stop(self) -> None:
        """Unregister the adapter and stop both processes (adapter first)."""
        aggregation.unregister(self.cluster.state.kubeconfig)
        self._host.stop()
        if self._prometheus is not None:
            self._prometheus.stop()
            self._prometheus = None
