"""What every add-on of the local cluster does the same way: binaries run on the host, waited for.

An add-on (KEDA, the External Secrets Operator, prometheus-adapter, Prometheus) installs its
CRDs into the cluster (``kube.install_crds``), then starts one or more binaries on the host
with a pid file and a log in its ``workdir``, waits until each answers, and stops them all,
last started first. :class:`HostProcesses` is that part; each add-on module keeps only what
differs (its flags, ports, certificates and readiness checks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra.tools.local import procs
from infra.tools.local.cluster import kube
from infra.tools.local.cluster.control_plane import Cluster

#: The PATH an add-on runs with: the binaries are self-contained, so only the base system's.
HOST_PATH = "/usr/bin:/bin"


def cluster_env(cluster: Cluster, **extra: str) -> dict[str, str]:
    """The environment of a controller run with the cluster's admin kubeconfig (``extra`` added)."""
    return {"KUBECONFIG": str(cluster.state.kubeconfig), **extra, "PATH": HOST_PATH}


@dataclass
class HostProcesses:
    """The host-run binaries of one add-on: pid files and logs in ``workdir``, stopped together."""

    workdir: Path
    env: dict[str, str] | None = None  # None: this process's environment
    started: list[procs.Proc] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], files: str | None = None) -> procs.Proc:
        """Start ``argv`` as ``name``, its pid and log in ``<files or name>.pid`` / ``.log``."""
        stem = files or name
        proc = procs.Proc(name, tuple(argv), self.workdir / f"{stem}.pid", self.workdir / f"{stem}.log")
        procs.start(proc, env=self.env)
        self.started.append(proc)
        return proc

    def wait(self, ready: str | Callable[[], bool], what: str, timeout: float, proc: procs.Proc) -> None:
        """Wait until ``ready`` (a URL answering 200, or a check) holds; fail with ``proc``'s log tail."""
        if isinstance(ready, str):
            url = ready
            kube.wait_until(lambda: kube.http_ok(url), what, timeout, lambda: procs.log_tail(proc))
        else:
            kube.wait_until(ready, what, timeout, lambda: procs.log_tail(proc))

    def log_tail(self, lines: int = 30) -> str:
        """Each process's last log lines (for a failed wait), headed by its name."""
        return "\n".join(f"--- {p.name}\n{procs.log_tail(p, lines)}" for p in self.started)

    def stop(self) -> None:
        """Stop every process, last started first."""
        for proc in reversed(self.started):
            procs.stop(proc)
        self.started.clear()
