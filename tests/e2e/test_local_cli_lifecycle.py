"""`python -m infra local up|status|down` as a user runs them: everything starts, then nothing is left."""

import os
import sys
from pathlib import Path

from e2e_kit import port_open, process_gone, run

from infra.tools.local import layout
from infra.tools.local.cluster.control_plane import Cluster
from infra.tools.local.layout import APISERVER_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT, StateDir

RUN_BEFORE_SESSION_CLUSTER = True  # it starts its own cluster on the same ports (see conftest.py)
PROCESSES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]


def test_up_then_down_leaves_nothing_running(built_toolchain: None, tmp_path: Path) -> None:
    environ = {**os.environ, layout.ENV_LOCAL_STATE: str(tmp_path)}
    local = [sys.executable, "-m", "infra", "local"]
    out = run([*local, "up"], environ)
    assert f"{'kube-apiserver':<24} ready (" in out
    assert "local cluster up in" in out
    pids = Cluster(StateDir(tmp_path)).status()
    assert list(pids) == PROCESSES
    assert all(pid is not None for pid in pids.values()), pids
    status = run([*local, "status"], environ)
    for name in PROCESSES:
        assert f"{name:<28} running pid {pids[name]}" in status

    out = run([*local, "down"], environ)
    assert out.strip() == f"stopped: {', '.join(reversed(PROCESSES))}"
    for name, pid in pids.items():
        assert pid is not None and process_gone(pid), f"{name} (pid {pid}) still runs"
    assert not any(port_open(p) for p in (ETCD_CLIENT_PORT, ETCD_PEER_PORT, APISERVER_PORT))
    assert list((tmp_path / "pids").iterdir()) == []
    assert run([*local, "down"], environ).strip() == "stopped: nothing was running"

    run([*local, "down", "--purge"], environ)
    assert not tmp_path.exists()
