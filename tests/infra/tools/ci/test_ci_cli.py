"""``python -m infra ci``: the workflow steps' commands, run for real (git, files, exit codes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.tools.ci import cli as ci

REPO = Path(__file__).resolve().parents[4]


def run_ci(*argv: str, env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "infra", "ci", *argv], cwd=cwd, env={**base, **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ACTION": "yolo", "STACK": "prod"}, "ACTION: 'yolo' is not one of promote, promote-canary"),
        ({"ACTION": "promote", "STACK": "prod"}, "REASON: required for ACTION=promote"),
        ({"ACTION": "promote", "STACK": "", "REASON": "x"}, "STACK: required"),
        ({"ACTION": "promote-canary", "STACK": "prod", "REASON": "x", "CANARY_WEIGHT": "1e3"},
         "CANARY_WEIGHT: must be a whole percentage, got '1e3'"),
        ({"ACTION": "promote", "STACK": "prod", "REASON": "x", "FORCE": "yes"},
         "FORCE: must be true or false"),
        ({"ACTION": "rollout", "STACK": "prod", "STEPS": "10,50", "INTERVAL": "1m"},
         "PROMETHEUS_URL: required"),
    ],
)  # fmt: skip
def test_dispatch_refuses_bad_inputs_naming_the_variable(env: dict[str, str], message: str) -> None:
    done = run_ci("dispatch", env=env)
    assert done.returncode == 2
    assert message in done.stderr, done.stderr


def test_dispatch_runs_the_release_command_and_passes_on_its_refusal(tmp_path: Path) -> None:
    # An unknown stack: the release command itself refuses (exit 1) before touching anything.
    env = {"ACTION": "rollback", "STACK": "qa", "REASON": "x"}
    done = run_ci("dispatch", env=env, cwd=REPO)
    assert done.stdout.startswith("+ python -m infra release rollback --stack qa --reason x --push")
    assert done.returncode == 1 and "no stack file Pulumi.qa.yaml" in done.stderr


def test_identity_makes_the_actor_the_author_of_release_commits(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    done = run_ci("identity", env={"GITHUB_ACTOR": "octo-cat", "GITHUB_ACTOR_ID": "42"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    def config(key: str) -> str:
        found = subprocess.run(["git", "config", key], cwd=tmp_path, capture_output=True, text=True)
        return found.stdout.strip()

    assert (config("user.name"), config("user.email")) == ("octo-cat", "42+octo-cat@users.noreply.github.com")
    bad = run_ci("identity", env={"GITHUB_ACTOR": "x; rm -rf /"}, cwd=tmp_path)
    assert bad.returncode == 2 and "GITHUB_ACTOR: 'x; rm -rf /' is not a GitHub login" in bad.stderr
    assert config("user.name") == "octo-cat"


def test_identity_accepts_bot_actors() -> None:
    assert ci.identity({"GITHUB_ACTOR": "github-actions[bot]"})[0] == "github-actions[bot]"


def test_kubeconfig_refuses_an_unset_secret(tmp_path: Path) -> None:
    done = run_ci("kubeconfig", "--env", "KUBECONFIG_DATA", "--out", str(tmp_path / "k"), env={})
    assert done.returncode == 2
    assert "$KUBECONFIG_DATA is empty (is the secret set in this job's environment?)" in done.stderr
    assert not (tmp_path / "k").exists()


def test_plugins_without_a_cli_fails_clearly(tmp_path: Path) -> None:
    done = run_ci("plugins", env={"PATH": str(tmp_path)})
    assert done.returncode == 1 and "no pulumi on PATH" in done.stderr
