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

from infra.tools.local import procs
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
    _proc: procs.Proc | None = field(default=None, init=False)

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
        self._proc = procs.Proc(OPERATOR, tuple(argv), self.workdir / "eso.pid", self.workdir / "eso.log")
        env = {"KUBECONFIG": str(self.cluster.state.kubeconfig), "PATH": "/usr/bin:/bin"}
        procs.start(self._proc, env=env)
        proc = self._proc
        metrics = f"http://127.0.0.1:{self.metrics_port}/metrics"
        kube.wait_until(lambda: kube.http_ok(metrics), "the External Secrets Operator", timeout,
                        lambda: procs.log_tail(proc))  # fmt: skip
        return self

    def log_tail(self, lines: int = 20) -> str:
        """The controller's last log lines (for a failed wait)."""
        return procs.log_tail(self._proc, lines) if self._proc else ""

    def stop(self) -> None:
        """Stop the controller (the CRDs stay: the cluster goes away with them)."""
        if self._proc is not None:
            procs.stop(self._proc)
            self._proc = None
