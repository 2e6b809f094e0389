"""`python -m infra local up --real-node` then `down`, as a user runs them: the node comes and goes whole."""

import os
import sys
from pathlib import Path

from e2e_kit import process_gone, run

from infra.tools.local import layout
from infra.tools.local.cluster.control_plane import Cluster
from infra.tools.local.layout import StateDir
from infra.tools.local.realnode import netns
from infra.tools.local.realnode.layout import NETNS, NODE_NAME
from infra.tools.local.realnode.node import RealNode

RUN_BEFORE_SESSION_CLUSTER = True  # it starts its own cluster on the same ports (see conftest.py)


def test_up_real_node_then_down_leaves_nothing(built_toolchain: None, tmp_path: Path) -> None:
    environ = {**os.environ, layout.ENV_LOCAL_STATE: str(tmp_path)}
    local = [sys.executable, "-m", "infra", "local"]
    try:
        out = run([*local, "up", "--real-node"], environ, timeout=300)
        assert f"real node {NODE_NAME} Ready in" in out
        pids = RealNode(Cluster(StateDir(tmp_path))).status()
        assert all(pid is not None for pid in pids.values()), pids
        status = run([*local, "status"], environ)
        assert f"{'kubelet':<28} running pid {pids['kubelet']}" in status
    finally:
        out = run([*local, "down"], environ)
    assert "real node stopped: kubelet, containerd, real-node-relay" in out
    assert out.strip().endswith(
        "stopped: kwok, kube-scheduler, kube-controller-manager, kube-apiserver, etcd"
    )
    assert all(pid is not None and process_gone(pid) for pid in pids.values()), pids
    assert not netns.exists(NETNS)
    files = RealNode(Cluster(StateDir(tmp_path))).files
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(tmp_path) not in mounts and str(files.run) not in mounts
    assert not files.run.exists()
