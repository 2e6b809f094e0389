"""`python -m infra local env`: the exports that make plain pulumi and kubectl use the local cluster."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from infra.config.model import LOCAL_DEV_PASSPHRASE
from infra.tools.local import layout
from infra.tools.local.cluster import shell_env
from infra.tools.local.layout import StateDir
from infra.tools.local.toolchain.build import bin_dir

ROOT = layout.REPO_ROOT


def test_variables_put_the_toolchain_first_and_name_local_state(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    values = shell_env.variables(state, path="/usr/bin:/bin")
    assert values["PATH"] == f"{bin_dir()}:/usr/bin:/bin"
    assert values["KUBECONFIG"] == str(tmp_path / "state" / "kubeconfig")
    assert values["PULUMI_BACKEND_URL"] == f"file://{tmp_path / 'state' / 'pulumi-state'}"
    assert values["PULUMI_CONFIG_PASSPHRASE"] == LOCAL_DEV_PASSPHRASE
    assert values["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"


def test_exports_survive_a_shell_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    odd = tmp_path / "dir with 'quotes' and $dollar"
    monkeypatch.setenv(layout.ENV_LOCAL_STATE, str(odd))
    script = shell_env.exports() + '\nprintf "%s\\n" "$KUBECONFIG" "$PULUMI_BACKEND_URL"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [f"{odd}/kubeconfig", f"file://{odd}/pulumi-state"]


def test_cli_env_prints_eval_able_exports(tmp_path: Path) -> None:
    run_env = {
        **os.environ,
        layout.ENV_LOCAL_STATE: str(tmp_path),
        layout.ENV_TOOLCHAIN_CACHE: str(tmp_path / "tc"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "infra", "local", "env"], cwd=ROOT, env=run_env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(line.startswith("export ") for line in lines)
    names = [line.split("=", 1)[0].removeprefix("export ") for line in lines]
    assert names[:4] == ["PATH", "KUBECONFIG", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"]
    assert f"export KUBECONFIG={shlex.quote(str(tmp_path / 'kubeconfig'))}" in lines
    assert lines[0].startswith(f"export PATH={tmp_path / 'tc' / 'bin'}:")
