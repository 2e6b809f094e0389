"""The real pulumi CLI with the local file backend and the passphrase secrets provider."""

import json
import shutil
import subprocess
from pathlib import Path

from e2e_kit import pulumi_env, run

from infra.config.model import LOCAL_DEV_PASSPHRASE
from infra.tools.local.layout import REPO_ROOT, StateDir
from infra.tools.local.toolchain.versions import PULUMI_VERSION

PROJECT = "mobius-preview-worker"


def minimal_project(tmp_path: Path) -> Path:
    """Pulumi.yaml and Pulumi.dev.yaml in a scratch folder, so no test writes to the work tree."""
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(REPO_ROOT / name, folder / name)
    return folder


def test_the_cli_reports_its_pinned_version(built_toolchain: None, tmp_path: Path) -> None:
    assert run(["pulumi", "version"], pulumi_env(StateDir(tmp_path))).strip() == f"v{PULUMI_VERSION}"


def test_secrets_are_encrypted_with_the_passphrase_in_a_file_backend(
    built_toolchain: None, tmp_path: Path
) -> None:
    state = StateDir(tmp_path / "state")
    environ = pulumi_env(state)
    folder = minimal_project(tmp_path)
    (folder / "Pulumi.dev.yaml").unlink()
    run(["pulumi", "stack", "init", "dev", "--secrets-provider", "passphrase"], environ, cwd=folder)
    run(["pulumi", "config", "set", "--secret", "probeToken", "s3cr3t-probe-value"], environ, cwd=folder)

    stack_file = (folder / "Pulumi.dev.yaml").read_text()
    assert "s3cr3t-probe-value" not in stack_file
    assert f"{PROJECT}:probeToken:\n    secure: v1:" in stack_file
    got = run(["pulumi", "config", "get", "probeToken"], environ, cwd=folder)
    assert got.strip() == "s3cr3t-probe-value"
    checkpoint = state.pulumi_backend / ".pulumi" / "stacks" / PROJECT / "dev.json"
    assert json.loads(checkpoint.read_text())["checkpoint"]["stack"] == f"organization/{PROJECT}/dev"

    wrong = {**environ, "PULUMI_CONFIG_PASSPHRASE": "not-the-passphrase"}
    proc = run_fails(["pulumi", "config", "get", "probeToken"], wrong, folder)
    assert "incorrect passphrase" in proc


def test_the_committed_dev_stack_decrypts_with_the_local_passphrase(
    built_toolchain: None, tmp_path: Path
) -> None:
    environ = pulumi_env(StateDir(tmp_path / "state"))
    assert environ["PULUMI_CONFIG_PASSPHRASE"] == LOCAL_DEV_PASSPHRASE
    folder = minimal_project(tmp_path)
    run(["pulumi", "stack", "init", "dev"], environ, cwd=folder)
    redis_url = run(["pulumi", "config", "get", "redisUrl"], environ, cwd=folder).strip()
    assert redis_url.startswith(("redis://", "rediss://"))


def run_fails(cmd: list[str], environ: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=environ, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stdout
    return proc.stdout + proc.stderr
