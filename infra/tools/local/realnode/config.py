"""The real node's config files, rendered from :mod:`.layout` (pure: no process is started here)."""

from __future__ import annotations

import json
from typing import Any

from infra.tools.local.realnode.layout import (
    CNI_BIN_DIR,
    CNI_BRIDGE,
    KUBE_PROXY_HEALTHZ_PORT,
    KUBE_PROXY_METRICS_PORT,
    KUBELET_HEALTHZ_PORT,
    KUBELET_PORT,
    NODE_ADDRESS,
    NODE_NAME,
    NODE_TAINT,
    PAUSE_IMAGE,
    POD_SUBNET,
    NodeDir,
)

_CRI = 'plugins."io.containerd.grpc.v1.cri"'


def containerd_toml(node: NodeDir) -> str:
    """containerd's config: its own root, state and socket; the CRI plugin set up for this machine.

    ``restrict_oom_score_adj``: without it every sandbox fails ("can't get final child's PID from
    pipe"), since the sandbox asks for a negative ``oom_score_adj`` this machine refuses.
    ``netns_mounts_under_state_dir``: the pods' network namespaces live under our state folder,
    not ``/run/netns``, so ``down`` finds and removes them.
    """
    lines = [
        "version = 2",
        f"root = {json.dumps(str(node.containerd_root))}",
        f"state = {json.dumps(str(node.containerd_state))}",
        "[grpc]",
        f"  address = {json.dumps(str(node.containerd_socket))}",
        "[ttrpc]",
        f"  address = {json.dumps(str(node.containerd_socket) + '.ttrpc')}",
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {json.dumps(str(node.run / 'containerd' / 'opt'))}",
        f"[{_CRI}]",
        f"  sandbox_image = {json.dumps(PAUSE_IMAGE)}",
        "  restrict_oom_score_adj = true",
        "  netns_mounts_under_state_dir = true",
        "  enable_selinux = false",
        f"[{_CRI}.cni]",
        f"  bin_dir = {json.dumps(str(CNI_BIN_DIR))}",
        f"  conf_dir = {json.dumps(str(node.cni_conf_dir))}",
        f"[{_CRI}.registry]",
        f"  config_path = {json.dumps(str(node.registry_config))}",
        f"[{_CRI}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        f"[{_CRI}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{_CRI}.containerd.runtimes.runc.options]",
        f"  Root = {json.dumps(str(node.runc_root))}",
    ]
    return "\n".join(lines) + "\n"


def cni_conflist(node: NodeDir) -> dict[str, Any]:
    """A bridge + host-local network for pods, inside the node's namespace (leases kept under ``node``)."""
    return {
        "cniVersion": "1.0.0",
        "name": "mobius-real-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": CNI_BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node.run / "ipam"),
                },
            },
            {"type": "loopback"},
        ],
    }


def kubelet_config(node: NodeDir, ca_cert: str) -> dict[str, Any]:
    """The KubeletConfiguration this machine accepts (cgroup v1, cgroupfs, no swap check, no QoS cgroups)."""
    key, value, effect = NODE_TAINT
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "containerRuntimeEndpoint": f"unix://{node.containerd_socket}",
        "address": NODE_ADDRESS,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": ca_cert},
        },
        "authorization": {"mode": "Webhook"},
        "registerWithTaints": [{"key": key, "value": value, "effect": effect}],
        # The sandbox's disk is shared and often well used: evict only when it is really full.
        "evictionHard": {"nodefs.available": "1%", "imagefs.available": "1%", "memory.available": "50Mi"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        # A pod's Secret and ConfigMap volumes are refreshed at its periodic sync: every 10 s rather
        # than the default minute, so a rotated secret reaches a running pod within seconds.
        "syncFrequency": "10s",
        "resolvConf": "",
        "staticPodPath": "",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }


def kube_proxy_config(node: NodeDir) -> dict[str, Any]:
    """kube-proxy's KubeProxyConfiguration: iptables mode in the node's namespace, loopback-only ports.

    Its rules go into the node's namespace (it runs there), whose ``iptables`` is Debian's
    ``iptables-nft``; they go with the namespace on ``down``. ``conntrack.maxPerCore: 0`` leaves
    ``nf_conntrack_max`` alone: that sysctl is writable only in the host's own namespace, and
    kube-proxy would fail at start trying to raise it. The TCP timeouts it sets are per-namespace
    and writable, so they keep kube-proxy's defaults. ``oomScoreAdj: 0``: this machine refuses a
    negative one. Traffic from the pods' range is "local" (``clusterCIDR``); NodePorts listen on
    the node's address only.
    """
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(node.kube_proxy_kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "clusterCIDR": POD_SUBNET,
        "detectLocalMode": "ClusterCIDR",
        "nodePortAddresses": ["primary"],
        "healthzBindAddress": f"127.0.0.1:{KUBE_PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": f"127.0.0.1:{KUBE_PROXY_METRICS_PORT}",
        "oomScoreAdj": 0,
        "conntrack": {"maxPerCore": 0},
        "iptables": {"localhostNodePorts": False},
    }


def registry_hosts_toml(registry: str) -> str:
    """containerd's ``hosts.toml`` for a loopback registry (``127.0.0.1:<port>``): plain HTTP.

    Inside the node's namespace ``127.0.0.1:<port>`` is the relay to the host's registry (see
    :mod:`.forward`), so the image name is the same one the build pushed and pinned.
    """
    url = f"http://{registry}"
    return f'server = "{url}"\n\n[host."{url}"]\n  capabilities = ["pull", "resolve"]\n'
