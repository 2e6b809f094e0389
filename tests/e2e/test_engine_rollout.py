"""A progressive rollout through the real engine, with a real git remote (a bare repo on disk).

Every step is committed and pushed to the rollout's branch before its ``pulumi up``; the
run is killed mid-rollout, and the cluster is then at most one step behind the branch.
A program change merging meanwhile does not undo it: main.yml's ``release guard`` refuses the
deploy while the rollout is not in ``main``. A rerun from a fresh clone of ``main`` (a new CI
runner) resumes from the branch's last commit, finishes, and leaves the cluster exactly as the
branch's stack file says; once its pull request merges, main's deploy is allowed and changes nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_kit import ScratchProject, drop_stack, git_init, kubectl_json, pulumi_run, run
from live_kit import container

from infra.manifests.scaling import canary
from infra.tools.release import branches
from infra.tools.release.stackfile import StackFile
from tests.infra.tools.release.release_promkit import PromServer, steady
from tests.infra.tools.release.release_promkit import start as start_prometheus

pytestmark = pytest.mark.timeout(900)

REPO = "127.0.0.1:5000/mobius/preview-worker"
CANARY = f"{REPO}@sha256:{'7' * 64}"
STACK, NAMESPACE = "dev-r", "preview-dev-r"
REPLICAS = (4, 8)
BRANCH = branches.rollout_branch(STACK, CANARY)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromServer]:
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"))
    server.traffic.set(steady(canary_ok=20.0, canary_failed=0.1))
    time.sleep(3.6)  # one whole analysis window of healthy traffic
    yield server
    server.stop()


@pytest.fixture(scope="module")
def deployed(scratch_project: ScratchProject) -> Iterator[tuple[Path, dict[str, str], Path]]:
    """The dev stack as ``dev-r``, deployed, in a git work tree whose origin is a bare repo."""
    project, environ = scratch_project("engine-rollout")
    text = (
        (project / "Pulumi.dev.yaml").read_text().replace("namespace: preview-dev", f"namespace: {NAMESPACE}")
    )
    key = "  mobius-preview-worker:worker:\n"
    text = text.replace(key, f"{key}    drainSeconds: 1\n", 1)
    text = text.replace("  min: 1\n    max: 2", f"  min: {REPLICAS[0]}\n    max: {REPLICAS[1]}", 1)
    (project / f"Pulumi.{STACK}.yaml").write_text(text)
    pulumi_run(["stack", "init", STACK], environ, project)
    origin = project.parent / "origin.git"
    environ = git_init(project, environ, origin)
    # The canary release, applied and merged: its commit is main on origin.
    release(project, environ, "canary", "--stack", STACK, "--image", CANARY, "--weight", "10", "--apply",
            "--reason", "e2e canary")  # fmt: skip
    (branch,) = git(
        project, environ, "for-each-ref", "--format=%(refname:short)", "refs/heads/release/"
    ).split()
    git(project, environ, "push", "-q", "origin", f"{branch}:main")
    git(project, environ, "merge", "-q", "--ff-only", branch)
    yield project, environ, origin
    drop_stack(project, environ, STACK)


def git(cwd: Path, environ: dict[str, str], *args: str) -> str:
    return run(["git", *args], environ, cwd=cwd, timeout=60)


def release(project: Path, environ: dict[str, str], *args: str) -> str:
    return run(
        [sys.executable, "-m", "infra", "release", "--root", str(project), *args], environ, timeout=300
    )


def rollout_argv(root: Path, prometheus: PromServer) -> list[str]:
    plan = ("--steps", "25,50,100", "--interval", "3s", "--prometheus", prometheus.url)
    return [sys.executable, "-m", "infra", "release", "--root", str(root), "rollout", "--stack", STACK, *plan,
            "--apply", "--push"]  # fmt: skip


def live(environ: dict[str, str]) -> dict[str, Any]:
    """Per live worker Deployment: its image and its HPA's bounds."""
    hpas = {
        h["metadata"]["name"]: h["spec"]
        for h in kubectl_json(environ, "-n", NAMESPACE, "get", "hpa")["items"]
    }
    found = kubectl_json(environ, "-n", NAMESPACE, "get", "deployments")["items"]
    return {
        d["metadata"]["name"]: (container(d)["image"], hpas[d["metadata"]["name"]]["minReplicas"],
                                hpas[d["metadata"]["name"]]["maxReplicas"])
        for d in found
        if d["metadata"]["name"] != "preview-worker-api"
    }  # fmt: skip


def expected(stack_file: Path) -> dict[str, Any]:
    """What a stack file says the live worker Deployments must be (split by manifests.scaling.canary)."""
    state = StackFile(stack_file).state()
    running = state.canary if state.canary and state.canary.image and state.canary.weight else None
    split = canary.plan(*REPLICAS, running.weight if running else 0)
    stable = split.bounds("stable")
    want = {"preview-worker-stable": (state.image, stable.min, stable.max)}
    if running:
        bounds = split.bounds("canary")
        want["preview-worker-canary"] = (running.image, bounds.min, bounds.max)
    return want


def branch_file(origin: Path, environ: dict[str, str], ref: str) -> Path:
    """The stack file as ``ref`` of origin holds it, written to a temp file for StackFile."""
    out = origin.parent / f"at-{ref.replace('/', '_').replace('~', '-')}.yaml"
    out.write_text(git(origin, environ, "show", f"{ref}:Pulumi.{STACK}.yaml"))
    return out


def test_a_killed_rollout_leaves_the_cluster_one_step_behind_at_most_and_a_rerun_finishes_it(
    deployed: tuple[Path, dict[str, str], Path], prometheus: PromServer, tmp_path: Path
) -> None:
    project, environ, origin = deployed
    assert live(environ) == expected(project / f"Pulumi.{STACK}.yaml")  # the canary at 10 %
    log = tmp_path / "first.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            rollout_argv(project, prometheus), env=environ, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 300
    while "rollout: waiting 3s before analysing step 2/2" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the job is cancelled (its whole process tree) in step 2
    proc.wait(timeout=30)
    assert "step 2/2" in _branch_log(origin, environ)  # pushed before its `pulumi up`
    assert live(environ) == expected(branch_file(origin, environ, BRANCH)), log.read_text()
    assert live(environ) != expected(branch_file(origin, environ, f"{BRANCH}~1"))
    before = expected(branch_file(origin, environ, "main"))  # the pre-rollout image and weight
    at_step_2 = live(environ)

    # Meanwhile a program change merges, and main.yml's `up` of the stack runs on a fresh clone:
    # main's file still says 10 %, so the guard refuses and the cluster stays at step 2.
    merged = clone_main(origin, environ, tmp_path / "program-change")
    (merged / "Pulumi.yaml").write_text((merged / "Pulumi.yaml").read_text() + "# a program change\n")
    git(merged, environ, "commit", "-qam", "a program change")
    git(merged, environ, "push", "-q", "origin", "main")
    deploy = clone_main(origin, environ, tmp_path / "main-deploy")
    refused = guard(deploy, environ)
    assert refused.returncode == 1 and f"refusing to deploy {STACK}: rollout {BRANCH}" in refused.stderr
    assert live(environ) == at_step_2 != before

    # The rerun: a fresh clone of main, as on a new runner.
    clone = clone_main(origin, environ, tmp_path / "rerun")
    done = subprocess.run(rollout_argv(clone, prometheus), env=environ, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rollout: resuming step 2/2 at 50%" in done.stdout
    assert "rollout: COMPLETE" in done.stdout
    subjects = git(origin, environ, "log", "--reverse", "--format=%s", f"main..{BRANCH}").splitlines()
    assert [s.split(" — ")[-1] for s in subjects] == ["step 1/2 at 25%", "step 2/2 at 50%", "complete"]
    final = expected(branch_file(origin, environ, BRANCH))
    assert final == {"preview-worker-stable": (CANARY, REPLICAS[0], REPLICAS[1])}
    assert live(environ) == final != before

    # Its pull request merges (with the program change): main's deploy is allowed and undoes nothing.
    merging = clone_main(origin, environ, tmp_path / "merge")
    git(merging, environ, "fetch", "-q", "origin", f"refs/heads/{BRANCH}")
    git(merging, environ, "merge", "-q", "--no-ff", "-m", f"Merge {BRANCH}", "FETCH_HEAD")
    git(merging, environ, "push", "-q", "origin", "main")
    deploy = clone_main(origin, environ, tmp_path / "main-deploy-2")
    allowed = guard(deploy, environ)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "# a program change" in (deploy / "Pulumi.yaml").read_text()
    pulumi_run(["preview", "--stack", STACK, "--expect-no-changes"], environ, deploy)
    assert live(environ) == final


def clone_main(origin: Path, environ: dict[str, str], dest: Path) -> Path:
    """A fresh clone of origin's main, as a new runner checks it out."""
    git(dest.parent, environ, "clone", "-q", "--branch", "main", str(origin), str(dest))
    return dest


def guard(root: Path, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """main.yml's step before `pulumi up`: ``release guard --stack`` in the deploy's checkout."""
    argv = [sys.executable, "-m", "infra", "release", "--root", str(root), "guard", "--stack", STACK]
    return subprocess.run(argv, env=environ, capture_output=True, text=True, timeout=120)


def _branch_log(origin: Path, environ: dict[str, str]) -> str:
    found = subprocess.run(["git", "log", "--format=%s", f"main..{BRANCH}"], cwd=origin, env=environ,
                           capture_output=True, text=True)  # fmt: skip
    return found.stdout if found.returncode == 0 else ""
