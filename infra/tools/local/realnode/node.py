"""Start and stop the real node: containerd, a kubelet and kube-proxy in their own network namespace.

``up`` (after the control plane is up) builds the kubelet and kube-proxy if they are not cached,
makes the namespace and its veth pair, starts a loopback relay to the API server inside it,
containerd, imports the pause image, starts the kubelet, waits for the Node to be Ready, then
starts kube-proxy (Services: its iptables rules live in the namespace) and waits for its first
sync. ``down`` stops kube-proxy, the pods' containers, the kubelet, containerd and the relay,
unmounts what containerd mounted, deletes the namespace (and so kube-proxy's rules) and the Node
object, and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra import runner
from infra.errors import ProcessError, ToolchainError
from infra.tools.local import procs
from infra.tools.local.cluster import kube, kubeconfig
from infra.tools.local.cluster.control_plane import API_URL, Cluster
from infra.tools.local.layout import APISERVER_PORT, REPO_ROOT
from infra.tools.local.realnode import config, netns, pause
from infra.tools.local.realnode.layout import (
    BUSYBOX,
    CNI_BIN_DIR,
    CRI_NAMESPACE,
    KUBE_PROXY_METRICS_PORT,
    KUBE_PROXY_USER,
    NETNS,
    NODE_ADDRESS,
    NODE_LABEL,
    NODE_NAME,
    PAUSE_IMAGE,
    NodeDir,
)
from infra.tools.local.toolchain import build
from infra.tools.local.toolchain.versions import tool

Log = Callable[[str], None]
#: The Debian packages the node needs (deps/apt-local.txt), by the file each provides.
NEEDS = {"containerd": "containerd", "ctr": "containerd", "runc": "runc",
         "containerd-shim-runc-v2": "containerd"}  # fmt: skip
NODE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
LOOPBACK = "127.0.0.1"
#: The registry the demo pushes to (``infra/tools/demo``), relayed when no other is named.
DEFAULT_REGISTRIES = ("127.0.0.1:5000",)
#: The metric kube-proxy sets once it has written its IPv4 rules.
KUBE_PROXY_SYNCED = 'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"}'


@dataclass(frozen=True)
class RealNode:
    """The processes and files of the real node of one local cluster.

    ``registries`` are loopback registries (``127.0.0.1:<port>``) its containerd pulls from over
    plain HTTP, through the relay; the demo's (``DEFAULT_REGISTRIES``) unless told otherwise.
    """

    cluster: Cluster
    registries: tuple[str, ...] = ()
    host_ports: tuple[int, ...] = ()  # host loopback ports pods reach at HOST_ADDRESS

    @property
    def files(self) -> NodeDir:
        """The node's folder."""
        return NodeDir.of(self.cluster.state)

    def _proc(self, name: str, argv: list[str]) -> procs.Proc:
        st = self.cluster.state
        return procs.Proc(name, tuple(argv), st.pids / f"{name}.pid", st.logs / f"{name}.log")

    def relay(self) -> procs.Proc:
        """The API server's port, relayed into the namespace's loopback."""
        module = "infra.tools.local.realnode.forward"
        ports = [str(APISERVER_PORT), *(_loopback_port(r) for r in self.registries)]
        if self.host_ports:
            ports += ["--pods", *map(str, self.host_ports)]
        return self._proc("real-node-relay", [sys.executable, "-m", module, NETNS, *ports])

    def containerd(self) -> procs.Proc:
        """containerd with its own root, state, socket and CRI config."""
        return self._proc(
            "containerd", ["/usr/bin/containerd", "--config", str(self.files.containerd_config)]
        )

    def kubelet(self) -> procs.Proc:
        """The kubelet, registering ``NODE_NAME`` with the node label and taint."""
        f = self.files
        return self._proc("kubelet", [
            str(build.tool_path(tool("kubelet"))), f"--config={f.kubelet_config}",
            f"--kubeconfig={f.kubelet_kubeconfig}", f"--root-dir={f.kubelet_root}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_ADDRESS}",
            f"--node-labels={NODE_LABEL[0]}={NODE_LABEL[1]}", "--v=1",
        ])  # fmt: skip

    def kube_proxy(self) -> procs.Proc:
        """kube-proxy in iptables mode, for the Services of the pods on this node."""
        return self._proc("kube-proxy", [
            str(build.tool_path(tool("kube-proxy"))), f"--config={self.files.kube_proxy_config}", "--v=1",
        ])  # fmt: skip

    def all(self) -> list[procs.Proc]:
        """Every process, in start order."""
        return [self.relay(), self.containerd(), self.kubelet(), self.kube_proxy()]

    def status(self) -> dict[str, int | None]:
        """Each process's pid, or None if it is not running."""
        return {proc.name: procs.read_pid(proc) for proc in self.all()}

    def ctr(self, *args: str, check: bool = True) -> str:
        """Run ``ctr`` against this node's containerd, in the kubelet's namespace."""
        argv = ["ctr", "--address", str(self.files.containerd_socket), "-n", CRI_NAMESPACE, *args]
        return runner.run(argv, error=ProcessError, timeout=120, check=check)


def _loopback_port(registry: str) -> str:
    host, _, port = registry.partition(":")
    if host != LOOPBACK or not port.isdigit():
        raise ProcessError(
            f"the real node pulls only from loopback registries (127.0.0.1:<port>), not {registry!r}"
        )
    return port


def _stop_if_other(proc: procs.Proc) -> None:
    """Stop ``proc``'s running process when it was started with another argv."""
    pid = procs.read_pid(proc)
    if pid is not None and Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1] != [
        arg.encode() for arg in proc.argv
    ]:
        procs.stop(proc)


def _check_host() -> None:
    """Fail with the package to install when a binary the node needs is missing."""
    missing = {pkg for binary, pkg in NEEDS.items() if shutil.which(binary, path=NODE_PATH) is None}
    if not BUSYBOX.is_file():
        missing.add("busybox-static")
    if not (CNI_BIN_DIR / "bridge").is_file():
        missing.add("containernetworking-plugins")
    if missing:
        raise ToolchainError(f"the real node needs the Debian packages: {', '.join(sorted(missing))} "
                             "(listed in deps/apt-local.txt; `./dev setup` installs them)")  # fmt: skip


def _write_files(node: RealNode) -> None:
    f, pki = node.files, node.cluster.pki
    for folder in (f.root, f.run, f.cni_conf_dir, f.kubelet_root, f.containerd_root, f.containerd_state):
        folder.mkdir(parents=True, exist_ok=True)
    f.containerd_config.write_text(config.containerd_toml(f))
    (f.cni_conf_dir / "10-mobius.conflist").write_text(json.dumps(config.cni_conflist(f), indent=2))
    f.kubelet_config.write_text(yaml.safe_dump(config.kubelet_config(f, str(pki.ca_cert)), sort_keys=False))
    shutil.rmtree(f.registry_config, ignore_errors=True)
    for registry in node.registries:
        (f.registry_config / registry).mkdir(parents=True)
        (f.registry_config / registry / "hosts.toml").write_text(config.registry_hosts_toml(registry))
    cert, key = pki.client_cert("kubelet-real-node", f"system:node:{NODE_NAME}", "system:nodes")
    kubeconfig.write(f.kubelet_kubeconfig, API_URL, pki, client=(cert, key))
    f.kube_proxy_config.write_text(yaml.safe_dump(config.kube_proxy_config(f), sort_keys=False))
    cert, key = pki.client_cert("kube-proxy-real-node", KUBE_PROXY_USER)
    kubeconfig.write(f.kube_proxy_kubeconfig, API_URL, pki, client=(cert, key))


def _kube_proxy_synced() -> bool:
    """Whether kube-proxy has written its rules once (its metrics, on the namespace's loopback, say when).

    Not its ``/healthz``: that answers 200 from the start, before the first sync.
    """
    with netns.entered():  # the socket is made in the namespace, where kube-proxy listens
        return kube.http_ok(f"http://127.0.0.1:{KUBE_PROXY_METRICS_PORT}/metrics", expect=KUBE_PROXY_SYNCED)


def up(
    cluster: Cluster,
    registries: tuple[str, ...] = DEFAULT_REGISTRIES,
    host_ports: tuple[int, ...] = (),
    log: Log = print,
) -> RealNode:
    """Start the real node beside the running control plane; return once its Node is Ready.

    Pods reach each of ``host_ports`` (a service on the host's loopback) at ``HOST_ADDRESS``.
    """
    _check_host()
    for name in ("kubelet", "kube-proxy"):
        build.build(tool(name), log)  # cached after the first time
    node = RealNode(cluster, registries, host_ports)
    relay, containerd, kubelet, kube_proxy = node.all()  # the relay's argv checks every registry first
    started = time.monotonic()
    _write_files(node)
    netns.create()
    env = {"PATH": NODE_PATH, "PYTHONPATH": str(REPO_ROOT), "HOME": str(node.files.root)}
    _stop_if_other(relay)  # a node started with other ports (or registries) gets this up's relay
    procs.start(relay, env=env)
    with netns.entered():
        procs.start(containerd, env=env)
    kube.wait_until(lambda: procs.read_pid(containerd) is not None and node.files.containerd_socket.exists()
                    and bool(node.ctr("version", check=False)), "containerd", 30,
                    lambda: procs.log_tail(containerd))  # fmt: skip
    if PAUSE_IMAGE not in node.ctr("images", "ls", "-q"):
        pause.write_archive(node.files.pause_archive, PAUSE_IMAGE)
        node.ctr("images", "import", "--no-unpack", str(node.files.pause_archive))
    with netns.entered():
        procs.start(kubelet, env=env)
    kube.wait_until(
        lambda: procs.read_pid(kubelet) is not None and kube.node_ready(cluster.state.kubeconfig, NODE_NAME),
        f"node {NODE_NAME}", 90, lambda: procs.log_tail(kubelet, 30),
    )  # fmt: skip
    with netns.entered():
        procs.start(kube_proxy, env=env)
    kube.wait_until(lambda: procs.read_pid(kube_proxy) is not None and _kube_proxy_synced(), "kube-proxy",
                    30, lambda: procs.log_tail(kube_proxy, 30))  # fmt: skip
    procs.require_running(node.all())
    log(f"real node {NODE_NAME} Ready in {time.monotonic() - started:.1f}s ({NODE_ADDRESS}, netns {NETNS})")
    return node


def _kill_containers(node: RealNode) -> None:
    """SIGKILL every container task of this containerd and delete them (while it still runs)."""
    if procs.read_pid(node.containerd()) is None:
        return
    tasks = [
        line.split()[0] for line in node.ctr("tasks", "ls", check=False).splitlines()[1:] if line.strip()
    ]
    for task in tasks:
        node.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
    for task in tasks:
        for _ in range(50):
            if not node.ctr("tasks", "delete", task, check=False).strip() and task not in node.ctr(
                "tasks", "ls", "-q", check=False
            ):
                break
            time.sleep(0.1)


def _leftover_shims(socket: Path) -> list[int]:
    """Pids of the runc shims this node's containerd started (they name its socket in their argv)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(socket).encode() in argv:
            found.append(int(entry.name))
    return found


def _unmount_under(root: Path) -> list[str]:
    """Unmount every mount point under ``root`` (overlays, shm, pod netns files), deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(root) or point.startswith(f"{root}/"):
            points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        runner.run(["umount", "--lazy", point], error=ProcessError, timeout=30, check=False)
    return points


def down(cluster: Cluster, log: Log = print) -> list[str]:
    """Stop the real node and remove what it made; return the names of what was running or left."""
    node = RealNode(cluster)
    if not any(folder.exists() for folder in node.files.all()):
        # Never started with this state folder: nothing to say, and the namespace (one name on the
        # machine) is another state's node, which a `down` of an empty state must not take away.
        return []
    done: list[str] = []
    for proc in (node.kube_proxy(), node.kubelet()):
        if procs.stop(proc):
            done.append(proc.name)
    _kill_containers(node)
    if procs.stop(node.containerd()):
        done.append("containerd")
    for pid in _leftover_shims(node.files.containerd_socket):
        os.kill(pid, 9)
        done.append(f"shim {pid}")
    if procs.stop(node.relay()):
        done.append("real-node-relay")
    if any(_unmount_under(folder) for folder in node.files.all() if folder.exists()):
        done.append("mounts")
    shutil.rmtree(node.files.run, ignore_errors=True)  # images too: the pause import takes a second
    if netns.delete():
        done.append(f"netns {NETNS}")
    if cluster.state.kubeconfig.exists() and kube.http_ok(f"{API_URL}/readyz", kube.tls_context(cluster.pki)):
        kube.kubectl(
            cluster.state.kubeconfig, "delete", "node", NODE_NAME, "--ignore-not-found", "--wait=false"
        )
    log(f"real node stopped: {', '.join(done) or 'nothing was running'}")
    return done
