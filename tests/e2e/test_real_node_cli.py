"""`python -m infra local up --real-node` then `down`, as a user runs them: the node comes and goes whole."""

import os
from pathlib import Path

from e2e_kit import process_gone, run

from infra.tools.local import layout
from infra.tools.local.cluster.control_plane import Cluster
from infra.tools.local.layout import StateDir
from infra.tools.local.realnode import netns
from infra.tools.local.realnode.layout import NETNS, NODE_NAME
from infra.tools.local.realnode.node import RealNode
from tests.doc_commands import group

RUN_BEFORE_SESSION_CLUSTER = True  # it starts its own cluster on the same ports (see conftest.py)


def test_up_real_node_then_down_leaves_nothing(built_toolchain: None, tmp_path: Path) -> None:
    """docs/real-node.md's block, line by line as written (the state folder is this test's own)."""
    environ = {**os.environ, layout.ENV_LOCAL_STATE: str(tmp_path)}
    (block,) = group("real-node")
    up, status_line, down = block.commands()
    assert (up.split()[-1], status_line.split()[-1], down.split()[-1]) == ("--real-node", "status", "down")

    def shell(line: str, timeout: float = 180) -> str:
        return run(["bash", "-c", line], environ, timeout=timeout)

    try:
        out = shell(up, timeout=300)
        assert f"real node {NODE_NAME} Ready in" in out
        pids = RealNode(Cluster(StateDir(tmp_path))).status()
        assert all(pid is not None for pid in pids.values()), pids
        status = shell(status_line)
        assert f"{'kubelet':<28} running pid {pids['kubelet']}" in status
        assert f"{'kube-proxy':<28} running pid {pids['kube-proxy']}" in status
    finally:
        out = shell(down)
    assert "real node stopped: kube-proxy, kubelet, containerd, real-node-relay" in out
    assert out.strip().endswith(
        "stopped: kwok, kube-scheduler, kube-controller-manager, kube-apiserver, etcd"
    )
    assert all(pid is not None and process_gone(pid) for pid in pids.values()), pids
    assert not netns.exists(NETNS)
    files = RealNode(Cluster(StateDir(tmp_path))).files
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(tmp_path) not in mounts and str(files.run) not in mounts
    assert not files.run.exists()
