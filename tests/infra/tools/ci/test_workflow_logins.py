"""CI logs in to every state backend (issue 29, item 5): the workflows and the login action, parsed.

Which backend a repository uses is ``vars.PULUMI_BACKEND``; every job that talks to a stack's
state logs in through ``.github/actions/pulumi-login`` and holds exactly the permissions that
needs (``id-token: write`` for the OIDC backends, on those jobs and no other). The action's own
script step is ``python -m infra ci backend``, run here for real against each backend.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from infra.tools.ci import backend
from infra.tools.ci import cli as ci

REPO = Path(__file__).resolve().parents[4]
WORKFLOWS = REPO / ".github" / "workflows"
LOGIN = "./.github/actions/pulumi-login"
ACTION = REPO / LOGIN / "action.yml"
PULUMI_ACTION = "pulumi/actions@"
OIDC = {"id-token": "write"}
#: What each job that reaches a stack's state may do besides logging in to it.
JOB_PERMISSIONS = {
    ("pr.yml", "preview"): {"contents": "read", "pull-requests": "write"},  # the plan as a comment
    ("main.yml", "up"): {"contents": "read"},
    ("release.yml", "propose"): {"contents": "write", "pull-requests": "write"},  # the release branch
    ("release.yml", "rollout"): {"contents": "write", "pull-requests": "write"},  # the rollout branch
}
#: Jobs that hold ``id-token: write`` to sign, not to log in: the image job's keyless cosign signature
#: (docs/supply-chain.md), beside what it needs to push the image and the pin's branch.
SIGNING_JOBS = {
    ("main.yml", "image"): {"contents": "write", "pull-requests": "write", "packages": "write"},
}
#: The variables and secrets the login step takes; the same in every job.
LOGIN_INPUTS = {
    "backend": "${{ vars.PULUMI_BACKEND }}",
    "backend-url": "${{ secrets.PULUMI_BACKEND_URL }}",
    "pulumi-access-token": "${{ secrets.PULUMI_ACCESS_TOKEN }}",
    "aws-role-arn": "${{ vars.AWS_ROLE_ARN }}",
    "aws-region": "${{ vars.AWS_REGION }}",
    "gcp-workload-identity-provider": "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}",
    "gcp-service-account": "${{ vars.GCP_SERVICE_ACCOUNT }}",
    "azure-client-id": "${{ vars.AZURE_CLIENT_ID }}",
    "azure-tenant-id": "${{ vars.AZURE_TENANT_ID }}",
    "azure-subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}",
}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(path.read_text())
    return data


def jobs() -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        workflow = load(path)
        for name, job in workflow["jobs"].items():
            yield path.name, name, job, workflow


def reaches_state(job: dict[str, Any]) -> bool:
    """A job that runs the engine or the release tool against a stack's state."""
    engine = any(
        "command" in s.get("with", {}) for s in job["steps"] if s.get("uses", "").startswith(PULUMI_ACTION)
    )
    return engine or "infra ci dispatch" in str(job)


def test_every_job_that_reaches_a_stack_logs_in_once_before_any_pulumi_command() -> None:
    found = set()
    for workflow, name, job, _ in jobs():
        uses = [s.get("uses", "") for s in job["steps"]]
        logins = [i for i, u in enumerate(uses) if u == LOGIN]
        if not reaches_state(job):
            assert logins == [], (workflow, name)
            continue
        found.add((workflow, name))
        assert len(logins) == 1, (workflow, name)
        (login,) = logins
        login_step = job["steps"][login]
        assert login_step["with"] == LOGIN_INPUTS, (workflow, name)
        texts = [str(s) for s in job["steps"]]
        assert "./dev venv" in "".join(texts[:login]), f"{workflow}/{name}: the action runs the .venv"
        first_engine = next(
            i for i, s in enumerate(job["steps"])
            if "command" in s.get("with", {}) or "infra ci dispatch" in s.get("run", "")
        )  # fmt: skip
        assert login < first_engine, (workflow, name)
        assert job["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}", (workflow, name)
    assert found == set(JOB_PERMISSIONS)


def test_each_job_has_exactly_the_permissions_its_backend_login_needs_and_no_more() -> None:
    """``id-token: write`` on the jobs that log in (permissions cannot depend on a variable, so
    every backend-reaching job holds it; the cloud role's trust policy names the environment), on
    no other job and never workflow-wide."""
    for workflow, name, job, top in jobs():
        assert top["permissions"] == {"contents": "read"}, workflow
        expected = JOB_PERMISSIONS.get((workflow, name))
        if (workflow, name) in SIGNING_JOBS:
            assert job["permissions"] == {**SIGNING_JOBS[workflow, name], **OIDC}, (workflow, name)
            continue
        if expected is None:
            assert "id-token" not in job.get("permissions", {}), (workflow, name)
            continue
        assert job["permissions"] == {**expected, **OIDC}, (workflow, name)


def action() -> dict[str, Any]:
    return load(ACTION)


def test_the_login_action_runs_each_clouds_own_action_for_exactly_its_backend() -> None:
    steps = action()["runs"]["steps"]
    assert action()["runs"]["using"] == "composite"
    assert steps[0]["run"] == ".venv/bin/python -m infra ci backend"  # first: a mismatch fails here
    ci.parser().parse_args(steps[0]["run"].split()[4:])
    oidc = {s["if"]: s["uses"] for s in steps[1:]}
    want = {
        f"inputs.backend == '{b.name}'": b.oidc_action for b in backend.BACKENDS.values() if b.oidc_action
    }
    assert {cond: uses.split("@")[0] for cond, uses in oidc.items()} == want
    for uses in oidc.values():
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), uses
    text = ACTION.read_text()
    for ref in re.findall(r"uses: (.+)$", text, re.M):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", ref), ref
    assert set(action()["inputs"]) == set(LOGIN_INPUTS)


def test_the_login_actions_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (deps/apt-release.txt)"
    for found in action()["runs"]["steps"]:
        if "run" in found:
            done = subprocess.run([shellcheck, "-s", "bash", "-"], input=found["run"] + "\n",
                                  capture_output=True, text=True, timeout=60)  # fmt: skip
            assert (done.returncode, done.stdout) == (0, ""), done.stdout


def run_backend_step(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The action's script step as the runner runs it (bash, in the checkout, with the step's env)."""
    script = action()["runs"]["steps"][0]["run"].replace(".venv/bin/python", sys.executable)
    base = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "PYTHONPATH": str(REPO)}
    return subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=REPO, env={**base, **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"PULUMI_BACKEND_URL": "s3://state"}, "state backend: url"),  # unset: what the workflows did before
        ({"PULUMI_BACKEND": "url", "PULUMI_BACKEND_URL": "file:///tmp/state"}, "state backend: url"),
        ({"PULUMI_BACKEND": "cloud", "PULUMI_ACCESS_TOKEN": "pul-123"}, "state backend: cloud"),
        ({"PULUMI_BACKEND": "s3", "PULUMI_BACKEND_URL": "s3://state?region=eu-central-1"},
         "logged in by aws-actions/configure-aws-credentials through OIDC"),
        ({"PULUMI_BACKEND": "gcs", "PULUMI_BACKEND_URL": "gs://state"}, "google-github-actions/auth"),
        ({"PULUMI_BACKEND": "azblob", "PULUMI_BACKEND_URL": "azblob://state?storage_account=mobius"},
         "azure/login"),
    ],
)  # fmt: skip
def test_each_backend_is_accepted_with_its_own_url(env: dict[str, str], says: str) -> None:
    done = run_backend_step(env)
    assert done.returncode == 0, done.stderr
    assert says in done.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PULUMI_BACKEND": "dynamo"}, "PULUMI_BACKEND: 'dynamo' is not one of url, cloud, s3, gcs, azblob"),
        ({"PULUMI_BACKEND": "cloud"}, "PULUMI_ACCESS_TOKEN: empty, and PULUMI_BACKEND=cloud needs it"),
        ({"PULUMI_BACKEND": "cloud", "PULUMI_ACCESS_TOKEN": "t", "PULUMI_BACKEND_URL": "s3://hunter2-bucket"},
         "PULUMI_BACKEND_URL: PULUMI_BACKEND=cloud takes https:// URLs, this one has s3://"),
        ({"PULUMI_BACKEND": "s3"}, "PULUMI_BACKEND_URL: empty, and PULUMI_BACKEND=s3 needs it"),
        ({"PULUMI_BACKEND": "gcs", "PULUMI_BACKEND_URL": "s3://hunter2-bucket"},
         "PULUMI_BACKEND=gcs takes gs:// URLs, this one has s3://"),
        ({"PULUMI_BACKEND": "azblob", "PULUMI_BACKEND_URL": "hunter2-bucket"}, "this one has no scheme"),
        ({"PULUMI_BACKEND": "url"}, "PULUMI_BACKEND_URL: empty, and PULUMI_BACKEND=url needs it"),
    ],
)  # fmt: skip
def test_a_backend_and_secrets_that_disagree_fail_the_first_step_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    done = run_backend_step(env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "hunter2" not in done.stdout + done.stderr and "Traceback" not in done.stderr
