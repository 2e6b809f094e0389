"""The real node's files (issue 31), checked without starting anything: configs, layout, pause image."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import tarfile
import tomllib
from pathlib import Path

import pytest

from infra.errors import ProcessError, ToolchainError
from infra.tools.local.cluster.control_plane import Cluster
from infra.tools.local.layout import APISERVER_PORT, GOMOD_DIR, StateDir
from infra.tools.local.realnode import config, layout, pause
from infra.tools.local.realnode.node import RealNode
from infra.tools.local.toolchain import build
from infra.tools.local.toolchain.versions import tool

DEEP = StateDir(Path("/tmp/pytest-of-root/pytest-1234/test_a_rather_long_test_name_that_pytest_cut0/state"))
CRI = "io.containerd.grpc.v1.cri"


def test_sockets_fit_in_a_unix_socket_path_however_deep_the_state_folder() -> None:
    files = layout.NodeDir.of(DEEP)
    assert files.root == DEEP.root / "real-node"
    longest = files.kubelet_root / "pod-resources" / "kubelet.sock"
    for sock in (Path(f"{files.containerd_socket}.ttrpc"), longest):
        assert len(str(sock)) < 104, sock
    assert layout.NodeDir.of(StateDir(Path("/tmp/other"))).run != files.run  # one per state folder


def test_interface_names_fit_and_addresses_stay_inside_the_namespace_ranges() -> None:
    assert all(len(name) <= 15 for name in (layout.HOST_VETH, layout.NODE_VETH, layout.CNI_BRIDGE))
    veth = ipaddress.ip_network(f"{layout.HOST_ADDRESS}/{layout.VETH_PREFIX}", strict=False)
    assert ipaddress.ip_address(layout.NODE_ADDRESS) in veth
    assert not veth.overlaps(ipaddress.ip_network(layout.POD_SUBNET))
    assert all(ipaddress.ip_address(a).is_private for a in (layout.HOST_ADDRESS, layout.NODE_ADDRESS))


def test_containerd_config_is_its_own_and_has_what_this_machine_needs() -> None:
    files = layout.NodeDir.of(DEEP)
    parsed = tomllib.loads(config.containerd_toml(files))
    assert parsed["root"] == str(files.containerd_root) and parsed["state"] == str(files.containerd_state)
    assert parsed["grpc"]["address"] == str(files.containerd_socket)
    cri = parsed["plugins"][CRI]
    assert cri["restrict_oom_score_adj"] is True  # else every sandbox fails here
    assert cri["netns_mounts_under_state_dir"] is True  # pod namespaces where `down` finds them
    assert cri["sandbox_image"] == layout.PAUSE_IMAGE
    assert cri["cni"] == {"bin_dir": str(layout.CNI_BIN_DIR), "conf_dir": str(files.cni_conf_dir)}
    every_path = json.dumps(parsed)
    assert "/var/lib/containerd" not in every_path and "/run/containerd" not in every_path


def test_cni_network_hands_out_the_pod_subnet_and_keeps_leases_in_the_run_folder() -> None:
    files = layout.NodeDir.of(DEEP)
    bridge = config.cni_conflist(files)["plugins"][0]
    assert bridge["bridge"] == layout.CNI_BRIDGE
    assert bridge["ipam"]["ranges"] == [[{"subnet": layout.POD_SUBNET}]]
    assert Path(bridge["ipam"]["dataDir"]).is_relative_to(files.run)  # removed on `down`


def test_kubelet_config_registers_the_taint_and_fits_cgroup_v1_without_systemd() -> None:
    files = layout.NodeDir.of(DEEP)
    got = config.kubelet_config(files, "/ca.crt")
    key, value, effect = layout.NODE_TAINT
    assert got["registerWithTaints"] == [{"key": key, "value": value, "effect": effect}]
    assert (got["cgroupDriver"], got["failCgroupV1"], got["cgroupsPerQOS"]) == ("cgroupfs", False, False)
    assert got["containerRuntimeEndpoint"] == f"unix://{files.containerd_socket}"
    assert got["address"] == layout.NODE_ADDRESS
    assert got["authentication"]["anonymous"] == {"enabled": False}
    assert got["readOnlyPort"] == 0


@pytest.mark.parametrize("name", ["kubelet", "kube-proxy"])
def test_node_binaries_are_add_ons_of_the_kubernetes_group_so_a_plain_bootstrap_skips_them(name: str) -> None:
    binary = tool(name)
    assert binary.addon and binary.cache_key == tool("kube-apiserver").cache_key
    assert binary.package == f"k8s.io/kubernetes/cmd/{name}"
    assert name not in build.missing()  # never in the default set
    assert name in build.missing([name]) or build.tool_path(binary).exists()
    wrapper = GOMOD_DIR / "kubernetes" / "tools.go"
    assert f'_ "{binary.package}"' in wrapper.read_text()  # so its go.sum entries stay tidy


def test_kube_proxy_config_keeps_to_the_namespace_and_skips_what_the_sandbox_refuses() -> None:
    files = layout.NodeDir.of(DEEP)
    got = config.kube_proxy_config(files)
    assert (got["kind"], got["mode"]) == ("KubeProxyConfiguration", "iptables")
    assert got["clientConnection"]["kubeconfig"] == str(files.kube_proxy_kubeconfig)
    assert got["hostnameOverride"] == layout.NODE_NAME
    assert (got["clusterCIDR"], got["detectLocalMode"]) == (layout.POD_SUBNET, "ClusterCIDR")
    for key in ("healthzBindAddress", "metricsBindAddress"):
        assert got[key].startswith("127.0.0.1:"), key  # the namespace's own loopback
    assert got["conntrack"]["maxPerCore"] == 0  # nf_conntrack_max is the host namespace's only
    assert got["oomScoreAdj"] == 0  # a negative one is refused here
    assert files.kube_proxy_config.parent == files.kube_proxy_kubeconfig.parent == files.root


def test_pause_archive_is_a_docker_save_archive_with_one_busybox_layer(tmp_path: Path) -> None:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF not really")
    first = pause.write_archive(tmp_path / "a.tar", "mobius.local/pause:test", busybox)
    second = pause.write_archive(tmp_path / "b.tar", "mobius.local/pause:test", busybox)
    assert first == second  # the same bytes in, the same image id out
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        (entry,) = manifest
        assert entry["RepoTags"] == ["mobius.local/pause:test"]
        config_bytes = archive.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        layer_bytes = archive.extractfile("layer.tar").read()  # type: ignore[union-attr]
    assert first == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    image = json.loads(config_bytes)
    assert image["config"]["Entrypoint"] == pause.SLEEP_FOREVER
    assert image["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(layer_bytes)) as layer:
        member = layer.getmember("bin/busybox")
        assert member.mode == 0o755 and layer.extractfile(member).read() == busybox.read_bytes()  # type: ignore[union-attr]


def test_pause_archive_names_the_package_when_busybox_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match="busybox-static"):
        pause.write_archive(tmp_path / "a.tar", "x:y", tmp_path / "nope")


def test_a_loopback_registry_is_pulled_over_plain_http_and_nothing_else_is_relayed() -> None:
    parsed = tomllib.loads(config.registry_hosts_toml("127.0.0.1:5000"))
    assert parsed["server"] == "http://127.0.0.1:5000"
    assert parsed["host"]["http://127.0.0.1:5000"]["capabilities"] == ["pull", "resolve"]
    files = layout.NodeDir.of(DEEP)
    cri = tomllib.loads(config.containerd_toml(files))["plugins"][CRI]
    assert cri["registry"]["config_path"] == str(files.registry_config)
    for bad in ("registry.example.com:5000", "10.0.0.1:5000", "127.0.0.1", "127.0.0.1:http"):
        with pytest.raises(ProcessError, match="loopback registries"):
            RealNode(Cluster(DEEP), (bad,)).relay()
    relay = RealNode(Cluster(DEEP), ("127.0.0.1:5000",)).relay()
    assert relay.argv[-3:] == (layout.NETNS, str(APISERVER_PORT), "5000")


def test_host_ports_are_relayed_for_pods_after_the_node_s_own() -> None:
    relay = RealNode(Cluster(DEEP), ("127.0.0.1:5000",), (16379,)).relay()
    assert relay.argv[-5:] == (layout.NETNS, str(APISERVER_PORT), "5000", "--pods", "16379")
