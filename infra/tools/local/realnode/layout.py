"""The real node's names, addresses and files, declared once.

The node (containerd and the kubelet) runs in a network namespace of its own, joined to the
host by a veth pair: the kubelet refuses a loopback node IP, and every address here lives only
in interfaces this harness creates (and deletes on ``down``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from infra.tools.local.layout import StateDir

NODE_NAME = "mobius-real-node"
NETNS = "mobius-real-node"  # /run/netns/<NETNS>
HOST_VETH = "mobius-rn-host"  # interface names are at most 15 characters
NODE_VETH = "mobius-rn-node"
HOST_ADDRESS = "10.250.0.1"
NODE_ADDRESS = "10.250.0.2"
VETH_PREFIX = 30
POD_SUBNET = "10.250.1.0/24"  # the CNI bridge's range, inside the node's namespace only
CNI_BRIDGE = "mobius-cni0"
#: Only pods that select this label and tolerate the taint below run on the real node.
NODE_LABEL = ("mobius.dev/node", "real")
NODE_TAINT = ("mobius.dev/real-node", "true", "NoSchedule")
#: The sandbox ("pause") image, built locally from Debian's busybox-static and imported.
PAUSE_IMAGE = "mobius.local/pause:busybox"
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static (deps/apt-local.txt)
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
KUBELET_PORT = 10250  # inside the node's namespace: no clash with anything on the host
KUBELET_HEALTHZ_PORT = 10248
#: kube-proxy's health and metrics ports, on the namespace's own loopback only.
KUBE_PROXY_HEALTHZ_PORT = 10256
KUBE_PROXY_METRICS_PORT = 10249
#: The user kube-proxy's client cert names: the API server's bootstrap RBAC binds it to the
#: ``system:node-proxier`` ClusterRole (Services, EndpointSlices, Nodes: read; Events: write).
KUBE_PROXY_USER = "system:kube-proxy"
#: containerd's CRI namespace, where the kubelet's images and containers live.
CRI_NAMESPACE = "k8s.io"
RUN_DIR = Path("/run")


@dataclass(frozen=True)
class NodeDir:
    """Every file of the real node: configs under ``<state>/real-node``, runtime data under ``run``.

    The runtime data (containerd's sockets and state, the kubelet's root with its own sockets)
    goes to a short folder of its own, ``/run/mobius-rn-<hash of the state folder>``: a unix
    socket path must fit in 104 bytes, and a state folder under pytest's tmp dir is too deep.
    """

    root: Path
    run: Path

    @classmethod
    def of(cls, state: StateDir) -> NodeDir:
        """The real node's folders of the cluster whose state is ``state``."""
        digest = hashlib.sha256(str(state.root.resolve()).encode()).hexdigest()[:12]
        return cls(state.root / "real-node", RUN_DIR / f"mobius-rn-{digest}")

    def all(self) -> tuple[Path, Path]:
        """Both folders (what ``down`` unmounts under and removes)."""
        return (self.root, self.run)

    @property
    def containerd_root(self) -> Path:
        """containerd's persistent data (images, snapshots)."""
        return self.run / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        """containerd's runtime state (sockets, task bundles, pod network namespaces)."""
        return self.run / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        """containerd's gRPC socket (the kubelet's CRI endpoint)."""
        return self.containerd_state / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        """containerd's config.toml."""
        return self.root / "containerd.toml"

    @property
    def registry_config(self) -> Path:
        """containerd's ``config_path``: one ``<host:port>/hosts.toml`` per loopback registry."""
        return self.root / "registries"

    @property
    def cni_conf_dir(self) -> Path:
        """The CNI network config containerd reads."""
        return self.root / "cni"

    @property
    def kubelet_root(self) -> Path:
        """The kubelet's ``--root-dir`` (pod volumes, its serving cert)."""
        return self.run / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        """The KubeletConfiguration file."""
        return self.root / "kubelet.yaml"

    @property
    def kubelet_kubeconfig(self) -> Path:
        """The kubelet's kubeconfig (its node client cert)."""
        return self.root / "kubelet.kubeconfig"

    @property
    def kube_proxy_config(self) -> Path:
        """kube-proxy's KubeProxyConfiguration file."""
        return self.root / "kube-proxy.yaml"

    @property
    def kube_proxy_kubeconfig(self) -> Path:
        """kube-proxy's kubeconfig (its ``system:kube-proxy`` client cert)."""
        return self.root / "kube-proxy.kubeconfig"

    @property
    def pause_archive(self) -> Path:
        """The pause image, as a ``docker save`` archive for ``ctr images import``."""
        return self.root / "pause.tar"

    @property
    def runc_root(self) -> Path:
        """runc's state folder for this containerd's containers."""
        return self.containerd_state / "runc"
