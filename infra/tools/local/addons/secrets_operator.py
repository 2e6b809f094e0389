"""The External Secrets Operator on the local cluster: its CRDs and its controller on the host.

The controller is the built ``external-secrets`` add-on (vault, kubernetes and fake providers
only; see infra/tools/local/toolchain/versions.py), run with the cluster's admin kubeconfig the way its Helm
chart runs it with a ClusterRole. Its CRDs are installed from the same module version's
``config/crds/bases``, so controller and schemas always match. The reconcilers this project
never uses (PushSecret, ClusterPushSecret, ClusterExternalSecret) are turned off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from infra.tools.local.addons.host_processes import HostProcesses, cluster_env
from infra.tools.local.cluster import kube
from infra.tools.local.cluster.control_plane import Cluster
from infra.tools.local.toolchain.build import addon_binary, source_files

OPERATOR = "external-secrets"
UNUSED_RECONCILERS = ("push-secret", "cluster-push-secret", "cluster-external-secret")


def crd_files() -> list[Path]:
    """The operator's CRDs, from the module its controller is built from."""
    return source_files(OPERATOR, "config/crds/bases")


@dataclass
class SecretsOperator:
    """ESO's controller for one local cluster (``start`` / ``stop``); metrics on ``metrics_port``."""

    cluster: Cluster
    workdir: Path
    metrics_port: int
    _host: HostProcesses = field(init=False)

    def __post_init__(self) -> None:
        self._host = HostProcesses(self.workdir, cluster_env(self.cluster))

    def start(self, timeout: float = 60) -> SecretsOperator:
        """Install the CRDs, start the controller and wait until it serves its metrics."""
        binary = addon_binary(OPERATOR)
        kube.install_crds(self.cluster.state.kubeconfig, crd_files())
        argv = [
            binary,
            f"--metrics-addr=127.0.0.1:{self.metrics_port}",
            *(f"--enable-{name}-reconciler=false" for name in UNUSED_RECONCILERS),
            "--loglevel=info",
        ]
        proc = self._host.start(OPERATOR, argv, files="eso")
        metrics = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self._host.wait(metrics, "the External Secrets Operator", timeout, proc)
        return self

    def log_tail(self, lines: int = 20) -> str:
        """The controller's last log lines (for a failed wait)."""
        return self._host.log_tail(lines)

    def stop(self) -> None:
        """Stop the controller (the CRDs stay: the cluster goes away with them)."""
        self._host.stop()
