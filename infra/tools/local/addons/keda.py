"""KEDA on the local cluster: its CRDs, its operator and its metrics API server on the host.

Both binaries are the built ``keda-operator`` and ``keda-metrics-apiserver`` add-ons (KEDA
v2.18, infra/tools/local/toolchain/versions.py), run with the cluster's admin kubeconfig the way KEDA's Helm
chart runs them with their ClusterRoles. The CRDs come from the same module's
``config/crd/bases``. The two talk gRPC over mutual TLS with one cert signed by the cluster
CA (KEDA's chart has the operator generate it; here ``infra.tools.local.cluster.certs`` does, so the
operator needs no Secret-writing rights). The metrics server is registered as the
``external.metrics.k8s.io`` APIService (:mod:`infra.tools.local.addons.aggregation`), so the HPAs KEDA
creates read their metric through the API server as in a real cluster.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from infra.tools.local.addons import aggregation
from infra.tools.local.addons.host_processes import HostProcesses, cluster_env
from infra.tools.local.cluster import kube
from infra.tools.local.cluster.control_plane import Cluster
from infra.tools.local.toolchain.build import addon_binary, source_files

OPERATOR, METRICS_SERVER = "keda-operator", "keda-metrics-apiserver"
NAMESPACE = "keda"  # KEDA_CLUSTER_OBJECT_NAMESPACE: where KEDA keeps its own objects


def crd_files() -> list[Path]:
    """KEDA's CRDs (ScaledObject, ScaledJob, TriggerAuthentication, ...), from its own module."""
    return source_files(OPERATOR, "config/crd/bases")


@dataclass
class Keda:
    """KEDA's operator and metrics server for one local cluster (``start`` / ``stop``)."""

    cluster: Cluster
    workdir: Path
    grpc_port: int
    metrics_server_port: int
    health_port: int
    operator_metrics_port: int
    metrics_server_metrics_port: int
    _host: HostProcesses = field(init=False)

    def __post_init__(self) -> None:
        env = cluster_env(
            self.cluster,
            KEDA_CLUSTER_OBJECT_NAMESPACE=NAMESPACE,
            POD_NAMESPACE=NAMESPACE,
            WATCH_NAMESPACE="",  # every namespace
        )
        self._host = HostProcesses(self.workdir, env)

    def _certs(self) -> Path:
        """``ca.crt``, ``tls.crt``, ``tls.key``: the layout both binaries read their mTLS cert from."""
        pki, folder = self.cluster.pki, self.workdir / "certs"
        dns = (f"{OPERATOR}.{NAMESPACE}.svc", f"{METRICS_SERVER}.{NAMESPACE}.svc", "localhost")
        cert, key = pki.serving_cert("keda", dns, client=True)
        folder.mkdir(parents=True, exist_ok=True)
        for source, name in ((pki.ca_cert, "ca.crt"), (cert, "tls.crt"), (key, "tls.key")):
            shutil.copyfile(source, folder / name)
        (folder / "tls.key").chmod(0o600)
        return folder

    def _ca_dir(self) -> Path:
        """Extra CAs KEDA's scalers trust (``--ca-dir``): the cluster CA only."""
        folder = self.workdir / "ca"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.cluster.pki.ca_cert, folder / "cluster-ca.crt")
        return folder

    def start(self, timeout: float = 90) -> Keda:
        """Install the CRDs, start both, register the metrics server and wait until it is Available."""
        operator, metrics_server = addon_binary(OPERATOR), addon_binary(METRICS_SERVER)
        kubeconfig = self.cluster.state.kubeconfig
        kube.install_crds(kubeconfig, crd_files())
        kube.kubectl(kubeconfig, "create", "namespace", NAMESPACE, check=False)
        self.workdir.mkdir(parents=True, exist_ok=True)
        certs = self._certs()
        op = self._host.start(OPERATOR, [
            operator, f"--metrics-bind-address=127.0.0.1:{self.operator_metrics_port}",
            f"--health-probe-bind-address=127.0.0.1:{self.health_port}",
            f"--metrics-service-bind-address=127.0.0.1:{self.grpc_port}",
            f"--cert-dir={certs}", f"--ca-dir={self._ca_dir()}", "--enable-cert-rotation=false",
            "--leader-elect=false", "--zap-log-level=info",
        ])  # fmt: skip
        self._host.wait(f"http://127.0.0.1:{self.health_port}/readyz", OPERATOR, timeout, op)
        server = self._host.start(METRICS_SERVER, [
            metrics_server, f"--secure-port={self.metrics_server_port}", "--bind-address=127.0.0.1",
            f"--cert-dir={certs}", f"--tls-cert-file={certs / 'tls.crt'}",
            f"--tls-private-key-file={certs / 'tls.key'}", f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            f"--metrics-service-address=localhost:{self.grpc_port}",
            f"--port={self.metrics_server_metrics_port}",
        ])  # fmt: skip
        aggregation.register(kubeconfig, self.cluster.pki.ca_cert, NAMESPACE, METRICS_SERVER,
                             self.metrics_server_port)  # fmt: skip
        self._host.wait(lambda: aggregation.available(kubeconfig), "KEDA's external metrics APIService",
                        timeout, server)  # fmt: skip
        return self

    def log_tail(self, lines: int = 30) -> str:
        """Both processes' last log lines (for a failed wait)."""
        return self._host.log_tail(lines)

    def stop(self) -> None:
        """Unregister the metrics server and stop both (the CRDs go with the cluster)."""
        aggregation.unregister(self.cluster.state.kubeconfig)
        self._host.stop()
