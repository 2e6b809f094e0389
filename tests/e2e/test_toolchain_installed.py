"""A user who installed Pulumi the normal way: bootstrap builds nothing and the engine runs with it.

The built engine binaries are copied where the Pulumi installer puts them (``~/.pulumi/bin`` on
``PATH``, the provider under ``$PULUMI_HOME/plugins``); with an empty toolchain cache,
``bootstrap`` must find and use them, and ``pulumi preview`` of the program must run on them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_kit import engine_environ, pulumi_run

from infra.tools.local import layout
from infra.tools.local.cluster import control_plane
from infra.tools.local.project import project_copy
from infra.tools.local.toolchain import build, plugins
from infra.tools.local.toolchain.versions import ENGINE_TOOLS, PULUMI_VERSION, tool

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def user_install(built_toolchain: None, tmp_path: Path) -> tuple[Path, Path]:
    """``<tmp>/dot-pulumi/bin`` with the CLI and language host, ``<tmp>/dot-pulumi`` as PULUMI_HOME."""
    home = tmp_path / "dot-pulumi"
    (home / "bin").mkdir(parents=True)
    for name in ("pulumi", "pulumi-language-python", "pulumi-language-python-exec"):
        shutil.copy2(build.bin_dir() / name, home / "bin" / name)
    provider = tool("pulumi-resource-kubernetes")
    target = plugins.plugin_binary(provider, home)
    target.parent.mkdir(parents=True)
    shutil.copy2(build.tool_path(provider), target)
    return home / "bin", home


def test_bootstrap_uses_the_installed_engine_and_builds_nothing(
    user_install: tuple[Path, Path], local_cluster: control_plane.Cluster, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    user_bin, user_home = user_install
    cache = tmp_path / "empty-cache"
    environ = {
        **os.environ,
        "PATH": f"{user_bin}:{os.environ['PATH']}",
        "PULUMI_HOME": str(user_home),
        layout.ENV_TOOLCHAIN_CACHE: str(cache),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "infra", "local", "bootstrap", "--only", *ENGINE_TOOLS],
        cwd=layout.REPO_ROOT, env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "toolchain ready in" in proc.stderr and ": 0 built, 3 cached" in proc.stderr, proc.stderr
    assert f"pulumi {PULUMI_VERSION}: using the installed {user_bin / 'pulumi'}" in proc.stderr
    assert "building" not in proc.stderr
    monkeypatch.setenv(layout.ENV_TOOLCHAIN_CACHE, str(cache))
    assert (build.bin_dir() / "pulumi").resolve() == user_bin / "pulumi"
    assert (build.bin_dir() / "pulumi-language-python").resolve() == user_bin / "pulumi-language-python"
    assert plugins.installed(tool("pulumi-resource-kubernetes"), cache / "pulumi-home")

    # The engine runs the program on the installed binaries, without a "from $PATH" warning.
    engine = engine_environ(local_cluster.state, tmp_path / "backend")
    project = project_copy(tmp_path / "project")
    pulumi_run(["stack", "init", "dev"], engine, project)
    out = pulumi_run(["preview", "--stack", "dev"], engine, project)
    assert re.search(r"^    \+ \d+ to create$", out, re.M), out
    assert "from $PATH" not in out
    assert "warning" not in out.lower(), out
