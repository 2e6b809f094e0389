"""The GitHub workflows: linted by actionlint, and their shell steps run here against the repo commands."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from release_testkit import REPO, digest
from ruamel.yaml import YAML

from infra.image import cli as image_cli
from infra.local.layout import pulumi_home
from infra.local.toolchain import bin_dir
from infra.release import cli as release_cli
from infra.release import history

WORKFLOWS = REPO / ".github" / "workflows"
SETUP_SCRIPT = REPO / "deps" / "setup.d" / "20-actionlint.sh"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load((WORKFLOWS / name).read_text())
    return data


def step(workflow: str, job: str, name: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = load(workflow)["jobs"][job]["steps"]
    (found,) = [s for s in steps if s.get("name") == name]
    return found


def runs(workflow: str) -> list[str]:
    return [s["run"] for job in load(workflow)["jobs"].values() for s in job["steps"] if "run" in s]


def actionlint() -> str:
    version = re.search(r"^VERSION=(v[\d.]+)$", SETUP_SCRIPT.read_text(), re.M)
    assert version is not None
    path = Path.home() / ".cache" / "mobius-preview-worker" / f"actionlint-{version.group(1)}" / "actionlint"
    if not path.is_file():
        pytest.fail(f"actionlint is not built: run `bash {SETUP_SCRIPT.relative_to(REPO)}` (./dev test does)")
    return str(path)


def test_actionlint_with_shellcheck_passes() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (deps/apt-release.txt; ./dev setup installs it)"
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert [Path(f).name for f in files] == ["main.yml", "pr.yml", "release.yml"]
    done = subprocess.run(
        [actionlint(), f"-shellcheck={shellcheck}", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "bad.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ foo.bar }}\n"
    )
    done = subprocess.run(
        [actionlint(), str(broken)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and 'undefined variable "foo"' in done.stdout


def test_pr_runs_the_suite_and_previews_both_stacks_with_the_policy_pack() -> None:
    pr = load("pr.yml")
    assert list(pr["on"]) == ["pull_request"]
    assert (
        step("pr.yml", "test", "Install, lint, type-check and test (exactly what .ci/run does)")["run"]
        == "./dev test"
    )
    assert "./dev test" in (REPO / ".ci" / "run").read_text()
    assert pr["jobs"]["preview"]["strategy"]["matrix"]["stack"] == ["staging", "prod"]
    preview = step("pr.yml", "preview", "pulumi preview with the policy pack")["run"]
    assert 'pulumi preview --stack "$STACK" --policy-pack policy/ --diff' in preview
    assert (REPO / "policy").is_dir()
    post = step("pr.yml", "preview", "Post the preview on the pull request")
    assert 'gh pr comment "$PR" --body-file' in post["run"] and post["if"] == "always()"


def test_main_builds_pins_staging_and_applies_it() -> None:
    (build,) = [r for r in runs("main.yml") if "infra image build" in r]
    argv = shlex.split(
        build.replace('"$REGISTRY"', "ghcr.io").replace('"$REPOSITORY"', "mobius/preview-worker")
    )
    assert argv[:4] == [".venv/bin/python", "-m", "infra", "image"]
    args = image_cli.parser().parse_args(argv[4:])
    assert (args.command, args.registry, args.repository, args.stack) == (
        "build",
        "ghcr.io",
        "mobius/preview-worker",
        "staging",
    )
    assert step("main.yml", "staging", "pulumi up --stack staging")["run"].startswith(
        "pulumi up --stack staging --policy-pack policy/ --yes"
    )


def test_toolchain_step_exports_what_local_env_defines(tmp_path: Path) -> None:
    script = step("pr.yml", "preview", "Put the pinned Pulumi toolchain on PATH")["run"]
    for workflow, job in (("main.yml", "staging"), ("release.yml", "release")):
        assert step(workflow, job, "Put the pinned Pulumi toolchain on PATH")["run"] == script
    env = {**os.environ, "GITHUB_ENV": str(tmp_path / "env"), "GITHUB_PATH": str(tmp_path / "path")}
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, env=env, check=True, timeout=60)
    assert (tmp_path / "path").read_text() == f"{bin_dir()}\n"
    lines = (tmp_path / "env").read_text().splitlines()
    assert lines == [
        f"PULUMI_HOME={pulumi_home()}",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true",
        "PULUMI_SKIP_UPDATE_CHECK=true",
    ]


PROM_ARGS = ("--prometheus", "http://prometheus.monitoring:9090", "--apply")
RELEASE_CASES = [
    (
        {"ACTION": "promote"},
        ["promote", "--from", "staging", "--to", "prod", "--reason", "ship it", "--apply"],
    ),
    (
        {"ACTION": "promote-canary", "CANARY_WEIGHT": "25", "FORCE": "true"},
        [
            "promote",
            "--from",
            "staging",
            "--to",
            "prod",
            "--reason",
            "ship it",
            "--apply",
            "--canary",
            "25",
            "--force",
        ],
    ),
    (
        {"ACTION": "rollout"},
        [*("rollout", "--stack", "prod", "--steps", "10,25,50,100", "--interval", "10m"), *PROM_ARGS],
    ),
    ({"ACTION": "rollback"}, ["rollback", "--stack", "prod", "--reason", "ship it", "--apply"]),
    (
        {"ACTION": "rollback", "RELEASE_ID": "r-20261120-01"},
        ["rollback", "--stack", "prod", "--reason", "ship it", "--apply", "--to", "r-20261120-01"],
    ),
]


@pytest.mark.parametrize(("inputs", "expected"), RELEASE_CASES)
def test_release_dispatch_builds_valid_release_commands(
    tmp_path: Path, inputs: dict[str, str], expected: list[str]
) -> None:
    """Run the dispatch step's real script; a recording `.venv/bin/python` captures the command it runs."""
    script = step(
        "release.yml",
        "release",
        "Release (edits the stack file, appends the history, applies with pulumi up)",
    )
    record = tmp_path / "argv"
    shim = tmp_path / ".venv" / "bin" / "python"
    shim.parent.mkdir(parents=True)
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shlex.quote(str(record))}\n')
    shim.chmod(0o755)
    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "STACK": "prod",
        "CANARY_WEIGHT": "10",
        "STEPS": "10,25,50,100",
        "INTERVAL": "10m",
        "PROMETHEUS_URL": "http://prometheus.monitoring:9090",
        "RELEASE_ID": "",
        "REASON": "ship it",
        "FORCE": "false",
        **inputs,
    }
    subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script["run"]], cwd=tmp_path, env=env, check=True, timeout=30
    )
    argv = record.read_text().splitlines()
    assert argv[:3] == ["-m", "infra", "release"]
    assert argv[3:] == expected
    args = release_cli.parser().parse_args(argv[3:])  # the real command line accepts it
    assert args.command == expected[0]
    assert (tmp_path / "output").read_text() == "status=0\n"


def test_release_dispatch_refuses_an_unknown_action(tmp_path: Path) -> None:
    script = step(
        "release.yml",
        "release",
        "Release (edits the stack file, appends the history, applies with pulumi up)",
    )
    env = {"PATH": os.environ["PATH"], "ACTION": "yolo", "GITHUB_OUTPUT": str(tmp_path / "o")}
    done = subprocess.run(
        ["bash", "-c", script["run"]], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert (done.returncode, done.stderr.strip()) == (2, "unknown action yolo")


def test_commit_step_pushes_the_pin_with_its_history(tmp_path: Path) -> None:
    """main.yml's commit step, against a real bare origin: one commit with the stack file and history."""
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git = ["git", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", "--bare", str(origin)], check=True)
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml"):
        shutil.copy2(REPO / name, work / name)
    ident = {
        "GIT_AUTHOR_NAME": "ci",
        "GIT_AUTHOR_EMAIL": "ci@x",
        "GIT_COMMITTER_NAME": "ci",
        "GIT_COMMITTER_EMAIL": "ci@x",
    }
    env = {**os.environ, **ident, "GITHUB_SHA": "0123456789abcdef0123"}

    def sh(*cmd: str) -> None:
        subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True, timeout=30)

    sh("git", "add", ".")
    sh("git", "commit", "-q", "-m", "init")
    sh("git", "remote", "add", "origin", str(origin))
    sh("git", "push", "-q", "origin", "HEAD:main")
    script = step("main.yml", "staging", "Commit the pin and its history line")["run"]
    sh("bash", "-eo", "pipefail", "-c", script)  # nothing pinned yet: no commit
    assert release_cli.main(["--root", str(work), "pin", "--stack", "staging", "--image", digest("e")]) == 0
    sh("bash", "-eo", "pipefail", "-c", script)
    log = subprocess.run(
        ["git", "log", "--format=%s", "--name-only", "main"],
        cwd=origin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert log[:4] == ["release(staging):", "pin", "the", "build"]
    assert "Pulumi.staging.yaml" in log and "releases/staging.jsonl" in log
    assert history.read(work, "staging")[0].after.image == digest("e")
