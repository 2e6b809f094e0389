"""The embedded local control plane: etcd, kube-apiserver, controllers, KWOK, on loopback.

``up`` starts what is not running yet, in dependency order, waiting for each
to be healthy; ``down`` stops everything it started (KWOK first, etcd last)
and leaves no process behind. State (certs, etcd data, logs) stays under the
state folder so a second ``up`` is fast; ``down --purge`` removes it too.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from infra.errors import ProcessError, ToolchainError
from infra.tools.local import procs
from infra.tools.local.cluster import kube, kubeconfig
from infra.tools.local.cluster.certs import FRONT_PROXY_CLIENT, Pki, ensure_pki
from infra.tools.local.layout import APISERVER_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT, HOST, StateDir
from infra.tools.local.toolchain import build
from infra.tools.local.toolchain.build import tool_path
from infra.tools.local.toolchain.versions import tool

Log = Callable[[str], None]
ETCD_URL = f"http://{HOST}:{ETCD_CLIENT_PORT}"
API_URL = f"https://{HOST}:{APISERVER_PORT}"
#: The pinned tools a cluster runs (the engine's are checked by whoever runs pulumi).
CLUSTER_TOOLS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")
SERVICE_CIDR = "10.96.0.0/16"  # never routed; only the real node's kube-proxy DNATs them, in its namespace

# Debian's etcd 3.4 lacks the watch-progress requests that streaming lists need, so every
# streaming watch KWOK and the controller-manager opened ended with "RequestWatchProgress is
# disabled" and was retried with backoff: a new pod waited ~30 s to be marked Running and a 4-pod
# rollout took 2 min 20 s. With the server's WatchList off they use plain list+watch: 9 s.
SERVER_FEATURES = "WatchList=false"
#: How often the HPA controller re-reads its metrics (the kube default is 15 s).
HPA_SYNC_SECONDS = 5


@dataclass(frozen=True)
class Cluster:
    """The processes and files of one local cluster."""

    state: StateDir

    @property
    def pki(self) -> Pki:
        """The cluster's certificates."""
        return Pki.at(self.state.pki)

    def _proc(self, name: str, argv: list[str]) -> procs.Proc:
        return procs.Proc(name, tuple(argv), self.state.pids / f"{name}.pid", self.state.logs / f"{name}.log")

    def _bin(self, name: str) -> str:
        return str(tool_path(tool(name)))

    def etcd(self) -> procs.Proc:
        """etcd, plain HTTP on loopback only."""
        peer = f"http://{HOST}:{ETCD_PEER_PORT}"
        return self._proc("etcd", [
            shutil.which("etcd") or "etcd", "--name=mobius-local", f"--data-dir={self.state.etcd_data}",
            f"--listen-client-urls={ETCD_URL}", f"--advertise-client-urls={ETCD_URL}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=mobius-local={peer}", "--log-level=warn",
        ])  # fmt: skip

    def apiserver(self) -> procs.Proc:
        """kube-apiserver with client-cert auth, RBAC, and a service-account key pair."""
        pki = self.pki
        return self._proc("kube-apiserver", [
            self._bin("kube-apiserver"), f"--etcd-servers={ETCD_URL}",
            f"--bind-address={HOST}", f"--advertise-address={HOST}", f"--secure-port={APISERVER_PORT}",
            f"--tls-cert-file={pki.server_cert}", f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca_cert}", "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}", f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
            "--endpoint-reconciler-type=none", "--profiling=false", f"--cert-dir={self.state.pki}",
            f"--feature-gates={SERVER_FEATURES}",
            # The aggregation layer, for metrics adapters: requests reach them through the API
            # server, which proves itself with the front-proxy client cert.
            f"--requestheader-client-ca-file={pki.front_proxy_ca_cert}",
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.front_proxy_client_cert}",
            f"--proxy-client-key-file={pki.front_proxy_client_key}",
            # A real kubelet (issue 31) asks the API server who calls it (logs, exec, port-forward).
            f"--kubelet-client-certificate={pki.admin_cert}", f"--kubelet-client-key={pki.admin_key}",
            "--kubelet-preferred-address-types=InternalIP",
        ])  # fmt: skip

    def controller_manager(self) -> procs.Proc:
        """kube-controller-manager: Deployments -> ReplicaSets -> Pods, SA tokens, HPA, GC."""
        kc = str(self.state.kubeconfig)
        return self._proc("kube-controller-manager", [
            self._bin("kube-controller-manager"), f"--kubeconfig={kc}", "--leader-elect=false",
            f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            f"--bind-address={HOST}", "--secure-port=0",
            f"--service-account-private-key-file={self.pki.sa_key}", f"--root-ca-file={self.pki.ca_cert}",
            "--use-service-account-credentials=false", "--profiling=false",
            f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC_SECONDS}s",
        ])  # fmt: skip

    def scheduler(self) -> procs.Proc:
        """kube-scheduler: binds pods to the fake node (KWOK does not schedule)."""
        kc = str(self.state.kubeconfig)
        return self._proc("kube-scheduler", [
            self._bin("kube-scheduler"), f"--kubeconfig={kc}", "--leader-elect=false",
            f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            f"--bind-address={HOST}", "--secure-port=0", "--profiling=false",
        ])  # fmt: skip

    def kwok(self) -> procs.Proc:
        """KWOK: keeps annotated fake nodes Ready and marks their pods Running/Ready."""
        return self._proc("kwok", [
            self._bin("kwok"), f"--kubeconfig={self.state.kubeconfig}",
            f"--manage-nodes-with-annotation-selector={kube.KWOK_NODE_ANNOTATION}=fake",
            "--manage-all-nodes=false", "--node-ip=10.244.1.1", "--cidr=10.244.0.1/24",
            "--node-lease-duration-seconds=40", f"--config={self.state.root / 'kwok.yaml'}",
        ])  # fmt: skip

    def all(self) -> list[procs.Proc]:
        """Every process, in start order."""
        return [self.etcd(), self.apiserver(), self.controller_manager(), self.scheduler(), self.kwok()]

    def status(self) -> dict[str, int | None]:
        """Each process's pid, or None if it is not running."""
        return {proc.name: procs.read_pid(proc) for proc in self.all()}


def _check_ports_free(cluster: Cluster) -> None:
    """Fail clearly when another process (e.g. a cluster of another work tree) holds our ports."""
    if procs.read_pid(cluster.etcd()) is not None:
        return  # ours: `up` is resuming a running cluster
    for port in (ETCD_CLIENT_PORT, ETCD_PEER_PORT, APISERVER_PORT):
        with socket.socket() as sock:
            if sock.connect_ex((HOST, port)) == 0:
                raise ProcessError(
                    f"{HOST}:{port} is already in use by a process this state folder did not start "
                    f"({cluster.state.root}); stop the other local cluster first "
                    "(`python -m infra local down` in its work tree)"
                )


def _start_processes(cluster: Cluster, context: ssl.SSLContext, log: Log) -> None:
    """Start each process not yet running; wait for etcd and the API server to be healthy."""

    def step(proc: procs.Proc, ready: Callable[[], bool] | None, timeout: float = 60) -> None:
        procs.start(proc)
        if ready is None:
            log(f"{proc.name:<24} started")
            return
        waited = kube.wait_until(
            lambda: procs.read_pid(proc) is not None and ready(), proc.name, timeout,
            lambda: procs.log_tail(proc),
        )  # fmt: skip
        log(f"{proc.name:<24} ready ({waited:.1f}s)")

    step(cluster.etcd(), lambda: kube.http_ok(f"{ETCD_URL}/health", expect='"health":"true"'))
    step(cluster.apiserver(), lambda: kube.http_ok(f"{API_URL}/readyz", context), timeout=90)
    for proc in (cluster.controller_manager(), cluster.scheduler(), cluster.kwok()):
        step(proc, None)


def up(state: StateDir | None = None, log: Log = print) -> Cluster:
    """Start the local cluster (what is not already running), install CRDs, create the fake node."""
    missing = build.missing(CLUSTER_TOOLS)
    if missing:
        hint = "run `python -m infra local bootstrap`"
        raise ToolchainError(f"not built yet: {', '.join(missing)}; {hint}")
    build.etcd_binary()
    cluster = Cluster(state or StateDir.default())
    st = cluster.state
    for folder in (st.root, st.logs, st.pids, st.pulumi_backend):
        folder.mkdir(parents=True, exist_ok=True)
    (st.root / "kwok.yaml").touch()  # an empty config: KWOK's default stages, no ~/.kwok lookup
    _check_ports_free(cluster)
    pki = ensure_pki(st.pki)
    kubeconfig.write(st.kubeconfig, API_URL, pki)
    started = time.monotonic()
    _start_processes(cluster, kube.tls_context(pki), log)
    crds = kube.install_crds(st.kubeconfig, kube.crd_files())
    log(f"CRDs installed: {', '.join(c.split('/', 1)[1] for c in crds) or '(none in infra/crds/)'}")
    kube.ensure_node(st.kubeconfig)
    kube.wait_until(lambda: kube.node_ready(st.kubeconfig), f"node {kube.FAKE_NODE}", 60,
                    lambda: procs.log_tail(cluster.kwok()))  # fmt: skip
    time.sleep(0.5)
    procs.require_running(cluster.all())
    log(f"local cluster up in {time.monotonic() - started:.1f}s: {API_URL}, kubeconfig {st.kubeconfig}")
    return cluster


def down(state: StateDir | None = None, purge: bool = False, log: Log = print) -> list[str]:
    """Stop every cluster process (reverse start order); return the names that were running."""
    cluster = Cluster(state or StateDir.default())
    stopped = [proc.name for proc in reversed(cluster.all()) if procs.stop(proc)]
    log(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    if purge and cluster.state.root.exists():
        shutil.rmtree(cluster.state.root)
        log(f"removed {cluster.state.root}")
    return stopped
