"""`python -m infra local` argument handling and `status` on an empty cache."""

import os
import subprocess
import sys
from pathlib import Path

from infra.tools.local import layout
from infra.tools.local.cluster.control_plane import CLUSTER_TOOLS
from infra.tools.local.toolchain.versions import TOOLS


def local(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        layout.ENV_LOCAL_STATE: str(tmp_path / "state"),
        layout.ENV_TOOLCHAIN_CACHE: str(tmp_path / "cache"),
    }
    return subprocess.run(
        [sys.executable, "-m", "infra", "local", *args],
        cwd=layout.REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
    )


def test_status_on_an_empty_cache_lists_every_tool_missing_and_nothing_running(tmp_path: Path) -> None:
    proc = local(tmp_path, "status")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for tool in TOOLS:
        assert f"{tool.name:<28} {tool.version:<10} MISSING" in lines
    assert f"{'kube-apiserver':<28} stopped" in lines


def test_down_with_nothing_running_says_so(tmp_path: Path) -> None:
    proc = local(tmp_path, "down")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "stopped: nothing was running"


def test_up_without_a_toolchain_names_what_to_build(tmp_path: Path) -> None:
    proc = local(tmp_path, "up")
    assert proc.returncode == 1
    names = ", ".join(CLUSTER_TOOLS)
    assert proc.stderr.strip() == f"error: not built yet: {names}; run `python -m infra local bootstrap`"
    assert not (tmp_path / "state" / "pids").exists()


def test_unknown_subcommand_and_tool_are_usage_errors(tmp_path: Path) -> None:
    assert local(tmp_path, "bogus").returncode == 2
    bad = local(tmp_path, "bootstrap", "--only", "pulumi-resource-aws")
    assert bad.returncode == 2
    assert "invalid choice: 'pulumi-resource-aws'" in bad.stderr


def test_host_ports_are_checked_and_need_the_real_node(tmp_path: Path) -> None:
    alone = local(tmp_path, "up", "--host-port", "16379")
    assert alone.returncode == 2
    assert "error: --host-port needs --real-node" in alone.stderr
    for bad in ("0", "65536", "redis", "-1"):
        proc = local(tmp_path, "up", "--real-node", f"--host-port={bad}")
        assert proc.returncode == 2
        assert f"argument --host-port: must be a TCP port (1-65535), got {bad!r}" in proc.stderr
    assert not (tmp_path / "state" / "pids").exists()  # refused before anything started
