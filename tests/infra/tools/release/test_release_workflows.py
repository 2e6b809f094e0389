"""The GitHub workflows: linted by actionlint, and their script steps run here against the repo commands.

GitHub's runners are not reachable from here, so what a workflow *means* is checked on
its parsed YAML, and every ``run:`` step is a repository command that these tests (or
the ones they name) run for real.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from release_testkit import REPO, git
from ruamel.yaml import YAML

from infra.tools.ci import cli as ci
from infra.tools.image import cli as image_cli
from infra.tools.local import pythons
from infra.tools.local.toolchain.versions import PULUMI_VERSION, PYTHON_PULUMI_KUBERNETES_VERSION
from infra.tools.release import cli as release_cli
from infra.tools.release.stacks import PROMOTION_PATH
from infra.tools.snapshot import cli as snapshot_cli
from infra.tools.verify import cli as verify

WORKFLOWS = REPO / ".github" / "workflows"
SETUP_SCRIPT = REPO / "deps" / "setup.d" / "20-actionlint.sh"
NAMES = ["main.yml", "pr.yml", "release.yml"]
PULUMI_ACTION = "pulumi/actions@"
#: The environments holding deploy credentials (prod's is protected by required reviewers).
DEPLOY_ENVIRONMENTS = {"${{ matrix.stack }}", "${{ inputs.stack }}"}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load((WORKFLOWS / name).read_text())
    return data


def jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name in NAMES:
        for job_name, job in load(name)["jobs"].items():
            yield name, job_name, job


def steps() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, job_name, job in jobs():
        for found in job["steps"]:
            yield name, job_name, found


def step(workflow: str, job: str, name: str) -> dict[str, Any]:
    (found,) = [s for s in load(workflow)["jobs"][job]["steps"] if s.get("name") == name]
    return found


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
    assert [Path(f).name for f in files] == NAMES
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


def test_every_action_is_pinned_by_commit_sha_with_its_version_named() -> None:
    for name in NAMES:
        uses = re.findall(r"^\s*(?:- )?uses: (.+)$", (WORKFLOWS / name).read_text(), re.M)
        assert uses, name
        for ref in uses:
            if ref.startswith("./.github/actions/"):  # the repository's own (its uses: pinned alike)
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", ref), f"{name}: {ref}"


def test_pulumi_comes_from_pulumi_actions_at_the_pinned_version_with_the_pinned_plugins() -> None:
    engine_jobs = 0
    for name, job_name, job in jobs():
        kinds = [s for s in job["steps"] if s.get("uses", "").startswith(PULUMI_ACTION)]
        for found in kinds:
            assert found["with"]["pulumi-version"] == PULUMI_VERSION, (name, job_name)
        runs_engine = any("command" in s["with"] for s in kinds) or "infra ci dispatch" in str(job)
        if not runs_engine:
            continue
        engine_jobs += 1
        assert kinds and "command" not in kinds[0]["with"], f"{name}/{job_name}: install the CLI first"
        texts = [s.get("run", "") for s in job["steps"]]
        needs_plugins = any("command" in s["with"] for s in kinds) or job_name == "rollout"
        if needs_plugins:
            assert ".venv/bin/python -m infra ci plugins" in texts, f"{name}/{job_name} installs no plugins"
    assert engine_jobs == 4  # pr preview, main up, release propose (the gate), release rollout


def test_github_jobs_never_build_the_go_toolchain() -> None:
    """Only the test job (the suite itself runs the local cluster) restores the from-source toolchain."""
    for name, job_name, job in jobs():
        text = str(job)
        builds = "setup-go" in text or "./dev setup" in text or "./dev test" in text or "infra local" in text
        assert builds == ((name, job_name) == ("pr.yml", "test")), (name, job_name)


def test_pr_previews_each_stack_with_the_policy_pack_in_one_edited_comment() -> None:
    pr = load("pr.yml")
    assert list(pr["on"]) == ["pull_request"]
    assert step("pr.yml", "test", "Install, lint, type-check and test (exactly what .ci/run does)")[
        "run"
    ] == ("./dev test")
    assert "exec ./dev test" in (REPO / ".ci" / "run").read_text()
    preview = pr["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == list(PROMOTION_PATH)
    found = step("pr.yml", "preview", "pulumi preview with the policy pack, commented on the pull request")
    assert found["with"]["command"] == "preview" and found["with"]["stack-name"] == "${{ matrix.stack }}"
    assert found["with"]["policyPacks"] == "policy" and (REPO / "policy" / "PulumiPolicy.yaml").is_file()
    # One comment per stack (the action finds its own by stack and command), edited on each push.
    assert (found["with"]["comment-on-pr"], found["with"]["edit-pr-comment"]) == (True, True)
    # id-token: the OIDC backends' login (tests/infra/tools/ci/test_workflow_logins.py)
    assert preview["permissions"] == {"contents": "read", "pull-requests": "write", "id-token": "write"}


def test_pull_requests_never_hold_deploy_credentials() -> None:
    text = (WORKFLOWS / "pr.yml").read_text()
    assert "pull_request_target" not in text and "KUBECONFIG_PROD" not in text
    for name, job_name, job in jobs():
        uses_secrets = "secrets." in str(job)
        environment = job.get("environment")
        if not uses_secrets:
            continue
        deploys = environment in DEPLOY_ENVIRONMENTS
        if name == "pr.yml" or job_name == "propose":
            assert environment is not None and environment.endswith("-preview"), (name, job_name)
        else:
            assert deploys or job_name == "image", (name, job_name)
    assert load("main.yml")["jobs"]["up"]["environment"] == "${{ matrix.stack }}"
    assert load("release.yml")["jobs"]["rollout"]["environment"] == "${{ inputs.stack }}"


def test_one_concurrency_group_per_stack_for_everything_that_changes_it() -> None:
    groups = {}
    for name, job_name, job in jobs():
        if job.get("environment") in DEPLOY_ENVIRONMENTS:
            stack = job["environment"]
            groups[(name, job_name)] = job["concurrency"]
            assert job["concurrency"] == {"group": f"stack-{stack}", "cancel-in-progress": False}
    assert set(groups) == {("main.yml", "up"), ("release.yml", "rollout")}
    for name in ("main.yml", "release.yml"):
        assert "concurrency" not in load(name)  # no second, workflow-wide group for a stack


def test_nothing_pushes_to_main() -> None:
    for name in NAMES:
        text = (WORKFLOWS / name).read_text()
        assert "git push" not in text and "HEAD:main" not in text, name
    assert list(load("main.yml")["on"]) == ["push"]
    assert "paths-ignore" not in load("main.yml")["on"]["push"]  # releases deploy by their merge


def script_steps() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, job_name, found in steps():
        if "run" in found:
            yield name, job_name, found


def test_every_script_step_is_a_repository_command() -> None:
    parsers = {
        "release": release_cli.parser(),
        "ci": ci.parser(),
        "image": image_cli.parser(),
        "verify": verify.parser(),
        "snapshot": snapshot_cli.parser(),
    }
    seen: set[str] = set()
    for name, job_name, found in script_steps():
        script = found["run"].strip()
        assert "\n" not in script, f"{name}/{job_name}/{found.get('name')}: one command per step"
        argv = shlex.split(script.split(">>")[0])
        if argv[0] == "./dev":
            assert argv[1:] in (["test"], ["venv"], ["deps"]), script
            seen.add(f"dev {argv[1]}")
            continue
        if argv[:3] == [".venv/bin/python", "-m", "worker"]:
            assert argv[3] == "validate", script  # run for real in tests/worker/contract/test_files.py
            assert sorted(REPO.glob(argv[4])) == sorted((REPO / "schemas" / "examples").glob("*.json"))
            seen.add("worker validate")
            continue
        assert argv[:3] == [".venv/bin/python", "-m", "infra"], script
        values = {"$PREVIEW_API_URL": "http://127.0.0.1:1", "$PROMETHEUS_URL": "http://127.0.0.1:2"}
        args = parsers[argv[3]].parse_args(
            [values.get(a, a.replace("$RUNNER_TEMP", "/tmp")) for a in argv[4:]]
        )
        seen.add(f"{argv[3]} {getattr(args, 'command', '')}".strip())
    assert seen == {
        "dev test", "dev venv", "dev deps", "ci plugins", "ci kubeconfig", "ci identity", "ci dispatch",
        "ci registry-login", "ci path", "release changed", "release check-base", "release guard",
        "image build", "worker validate", "verify", "snapshot",
    }  # fmt: skip


def run_step(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "PYTHONPATH": str(REPO)}
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script], cwd=cwd, env={**base, **env}, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


def test_the_changes_step_outputs_the_stacks_a_merge_deploys(repo: Path, tmp_path: Path) -> None:
    """main.yml's first job, run as GitHub runs it, on real commits."""
    (repo / ".venv").symlink_to(REPO / ".venv")
    before = git(repo, "rev-parse", "HEAD").strip()
    prod = repo / "Pulumi.prod.yaml"
    prod.write_text(prod.read_text() + "# reviewed\n")
    git(repo, "commit", "-qam", "a prod release")
    after = git(repo, "rev-parse", "HEAD").strip()
    out = tmp_path / "github-output"
    found = step("main.yml", "changes", "What the merge deploys")
    done = run_step(found["run"], repo, {"BEFORE": before, "GITHUB_SHA": after, "GITHUB_OUTPUT": str(out)})
    assert done.returncode == 0, done.stderr
    assert out.read_text() == 'stacks=["prod"]\nimage=false\n'
    up = load("main.yml")["jobs"]["up"]
    assert up["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.changes.outputs.stacks) }}"
    assert up["if"] == "needs.changes.outputs.stacks != '[]'"


def test_the_release_base_step_fails_a_stale_release_pull_request(repo: Path) -> None:
    """pr.yml's release-base job, run as GitHub runs it, on two competing releases of prod."""
    (repo / ".venv").symlink_to(REPO / ".venv")
    job = load("pr.yml")["jobs"]["release-base"]
    assert job["if"] == "startsWith(github.head_ref, 'release/')"
    checkout = job["steps"][0]["with"]
    assert checkout == {"ref": "${{ github.event.pull_request.head.sha }}", "fetch-depth": 0}
    found = step("pr.yml", "release-base", "The release was cut from the base branch's current stack file")
    assert found["env"] == {"BASE_REF": "${{ github.base_ref }}"}
    release = [str(REPO / ".venv" / "bin" / "python"), "-m", "infra", "release", "--root", str(repo)]
    made = []
    for weight in ("10", "20"):
        argv = ["canary", "--stack", "prod", "--image", f"ghcr.io/m/w@sha256:{weight[0] * 64}"]
        done = subprocess.run([*release, *argv, "--weight", weight], cwd=REPO, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        made.append(
            git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/release/prod/").split()
        )
    first, second = made[0][0], next(b for b in made[1] if b not in made[0])
    git(repo, "push", "-q", "origin", f"{first}:main")  # the first release merges
    git(repo, "fetch", "-q", "origin")
    results = {}
    for branch in (first, second):
        git(repo, "switch", "-q", "--detach", branch)
        results[branch] = run_step(found["run"], repo, {"BASE_REF": "main"})
    assert results[first].returncode == 0, results[first].stderr
    assert results[second].returncode == 1
    assert results[second].stderr.splitlines()[0] == "rebase: prod changed since this release was cut"


def test_the_fast_path_skips_the_suite_and_still_previews_with_the_policy_pack(repo: Path) -> None:
    """pr.yml's path job, run as GitHub runs it on a rollback's branch; the jobs it gates."""
    (repo / ".venv").symlink_to(REPO / ".venv")
    pr = load("pr.yml")["jobs"]
    found = step("pr.yml", "path", "Which checks the changed files need")
    assert pr["path"]["steps"][0]["with"] == {"fetch-depth": 0}
    assert pr["path"]["outputs"] == {"path": "${{ steps.path.outputs.path }}"}
    assert (pr["test"]["needs"], pr["test"]["if"]) == ("path", "needs.path.outputs.path == 'full'")
    assert (pr["config"]["needs"], pr["config"]["if"]) == ("path", "needs.path.outputs.path == 'fast'")
    assert pr["config"]["strategy"]["matrix"]["stack"] == pr["preview"]["strategy"]["matrix"]["stack"]
    assert "infra snapshot --stack" in str(pr["config"]["steps"])
    assert pr["preview"]["needs"] == ["path", "config", "test"]
    gate = " ".join(pr["preview"]["if"].split())
    assert gate.startswith(
        "!cancelled() && (needs.test.result == 'success' || (needs.path.outputs.path == 'fast'"
    )
    assert "needs.config.result == 'success'" in gate
    release = [str(REPO / ".venv" / "bin" / "python"), "-m", "infra", "release", "--root", str(repo)]
    argv = ["pin", "--stack", "prod", "--image", f"ghcr.io/m/w@sha256:{'5' * 64}"]
    done = subprocess.run([*release, *argv], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (branch,) = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/release/prod/").split()
    git(repo, "fetch", "-q", "origin")
    results = {}
    for ref, edit in ((branch, None), ("main", "infra.txt")):
        git(repo, "switch", "-q", "--detach", ref)
        if edit:
            (repo / edit).write_text("code\n")
            git(repo, "add", edit)
            git(repo, "commit", "-qm", "code")
        out = repo.parent / f"output-{edit}"
        done = run_step(found["run"], repo, {"BASE_REF": "main", "GITHUB_OUTPUT": str(out)})
        assert done.returncode == 0, done.stderr
        results[ref] = out.read_text()
    assert results == {branch: "path=fast\n", "main": "path=full\n"}


def test_the_up_job_refuses_while_a_rollout_of_its_stack_is_not_in_main(repo: Path) -> None:
    """main.yml's guard step, run as GitHub runs it, before and after a rollout branch is pushed."""
    (repo / ".venv").symlink_to(REPO / ".venv")
    names = [s.get("name") for s in load("main.yml")["jobs"]["up"]["steps"]]
    guard = "Refuse while a rollout of the stack is not in main"
    assert names.index(guard) < names.index("pulumi up with the policy pack")
    script = step("main.yml", "up", guard)["run"].replace("${{ matrix.stack }}", "prod")
    assert run_step(script, repo, {}).returncode == 0
    release = [str(REPO / ".venv" / "bin" / "python"), "-m", "infra", "release", "--root", str(repo)]
    argv = ["canary", "--stack", "prod", "--image", f"ghcr.io/m/w@sha256:{'7' * 64}", "--weight", "10"]
    done = subprocess.run([*release, *argv], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (branch,) = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/release/prod/").split()
    git(repo, "push", "-q", "origin", f"{branch}:refs/heads/release/prod/rollout-777777777777")
    refused = run_step(script, repo, {})
    assert refused.returncode == 1
    assert "guard: refusing to deploy prod: rollout release/prod/rollout-777777777777" in refused.stderr
    assert run_step(script.replace("prod", "staging"), repo, {}).returncode == 0


def test_the_kubeconfig_step_writes_a_private_file_and_exports_it(tmp_path: Path) -> None:
    script = step("pr.yml", "preview", "Read-only kubeconfig of the stack's cluster")["run"]
    for workflow, job in (("main.yml", "up"), ("release.yml", "rollout")):
        assert step(workflow, job, "Deploy kubeconfig of the stack's cluster")["run"] == script
    kubeconfig = (
        "apiVersion: v1\nkind: Config\nclusters: [{name: c}]\nusers: [{name: u}]\ncontexts: [{name: x}]\n"
    )
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    env = {"KUBECONFIG_DATA": kubeconfig, "RUNNER_TEMP": str(tmp_path), "GITHUB_ENV": str(tmp_path / "env")}
    done = run_step(script, tmp_path, env)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "kubeconfig"
    assert written.read_text() == kubeconfig and written.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "env").read_text() == f"KUBECONFIG={written}\n"
    refused = run_step(script, tmp_path, {**env, "KUBECONFIG_DATA": "token: hunter2-secret"})
    assert refused.returncode == 2
    assert "is not a kubeconfig" in refused.stderr and "hunter2" not in refused.stderr + refused.stdout


def test_the_plugin_step_installs_what_versions_pins(tmp_path: Path) -> None:
    # Pulumi's plugin registry is not reachable from here: this stand-in `pulumi` records the
    # commands the step runs (tests/infra/tools/local covers installing the built plugin for real).
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(f'#!/bin/sh\necho "$@" >> {shlex.quote(str(calls))}\n')
    (bin_dir / "pulumi").chmod(0o755)
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    script = step("main.yml", "up", "Install the pinned Pulumi plugins")["run"]
    done = run_step(script, tmp_path, {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    assert calls.read_text() == f"plugin install resource kubernetes {PYTHON_PULUMI_KUBERNETES_VERSION}\n"


RELEASE_CASES = [
    ({"ACTION": "promote"},
     ["promote", "--from", "staging", "--to", "prod", "--reason", "ship it", "--push"]),
    (
        {"ACTION": "promote-canary", "CANARY_WEIGHT": "25", "FORCE": "true"},
        ["promote", "--from", "staging", "--to", "prod", "--reason", "ship it", "--push",
         "--canary", "25", "--force"],
    ),
    (
        {"ACTION": "rollout"},
        ["rollout", "--stack", "prod", "--steps", "10,25,50,100", "--interval", "10m",
         "--prometheus", "http://prometheus.monitoring:9090", "--apply", "--push"],
    ),
    ({"ACTION": "rollback"}, ["rollback", "--stack", "prod", "--reason", "ship it", "--push"]),
    (
        {"ACTION": "rollback", "RELEASE_ID": "r-20261120-01"},
        ["rollback", "--stack", "prod", "--reason", "ship it", "--to", "r-20261120-01", "--push"],
    ),
]  # fmt: skip
INPUTS = {
    "STACK": "prod",
    "CANARY_WEIGHT": "10",
    "STEPS": "10,25,50,100",
    "INTERVAL": "10m",
    "PROMETHEUS_URL": "http://prometheus.monitoring:9090",
    "RELEASE_ID": "",
    "REASON": "ship it",
    "FORCE": "false",
}


@pytest.mark.parametrize(("inputs", "expected"), RELEASE_CASES)
def test_release_dispatch_turns_inputs_into_one_release_command(
    inputs: dict[str, str], expected: list[str]
) -> None:
    argv = ci.dispatch_argv({**INPUTS, **inputs})
    assert argv == expected
    assert release_cli.parser().parse_args(argv).command == expected[0]  # the real command line takes it


def test_release_yml_passes_its_inputs_to_dispatch_by_name() -> None:
    release = load("release.yml")
    names = {k for k in release["env"]}
    assert names == {"ACTION", *INPUTS} - {"PROMETHEUS_URL"}
    assert release["jobs"]["rollout"]["env"]["PROMETHEUS_URL"] == "${{ vars.PROMETHEUS_URL }}"
    assert set(release["on"]["workflow_dispatch"]["inputs"]["action"]["options"]) == set(ci.DISPATCH_ACTIONS)


def test_every_preview_and_up_on_github_runs_the_policy_pack() -> None:
    commands = [
        (name, job_name, s["with"]["command"], s["with"].get("policyPacks"))
        for name, job_name, s in steps()
        if s.get("uses", "").startswith(PULUMI_ACTION) and "command" in s.get("with", {})
    ]
    assert sorted(c[:3] for c in commands) == [("main.yml", "up", "up"), ("pr.yml", "preview", "preview")]
    assert all(pack == "policy" for *_, pack in commands)
    # The rollout's ups go through the Automation API with the same pack (infra.tools.release.engine.apply,
    # tests/e2e/test_engine_guards.py shows it refusing a violating prod change).
    assert ci.dispatch_argv({**INPUTS, "ACTION": "rollout"})[-2:] == ["--apply", "--push"]


def test_every_up_on_merge_is_verified_right_after() -> None:
    up = [s.get("name") for s in load("main.yml")["jobs"]["up"]["steps"]]
    assert up[-2:] == [
        "pulumi up with the policy pack",
        "Verify the deploy (objects, health, a dry-run job, metrics)",
    ]
    # tests/e2e/test_verify.py runs the command against the local cluster and host-run processes.


def test_the_test_job_installs_every_supported_python_with_the_lowest_as_default() -> None:
    """pr.yml's suite covers every version requires-python claims: the list is pythons.supported(),
    and the last (the default, the .venv's) is the lowest, the image's."""
    steps = load("pr.yml")["jobs"]["test"]["steps"]
    (setup,) = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
    listed = str(setup["with"]["python-version"]).split()
    supported = pythons.supported()
    assert sorted(listed) == supported
    assert listed[-1] == supported[0]
    assert "python-version-file" not in setup["with"]
