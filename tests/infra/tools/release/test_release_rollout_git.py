"""A rollout with git: each step is pushed to the rollout branch before it is applied, and a
cancelled run resumes from the branch's last commit. Real git (a bare origin on disk) and a
real Prometheus; the engine half runs in tests/e2e/test_engine_rollout.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from release_promkit import PromServer, steady
from release_testkit import REPO, Run, digest, git, origin_of

from infra.config.model import load_stack_file
from infra.tools.release import branches, history, rollout
from infra.tools.release.analysis import load_rollout_config
from infra.tools.release.branches import Recorder
from infra.tools.release.promapi import Prometheus
from infra.tools.release.rollout import RolloutPlan

CANARY = digest("c")
HEALTHY = steady(canary_ok=20.0, canary_failed=0.1)
BRANCH = branches.rollout_branch("prod", CANARY)


def start_canary_on_main(repo: Path, run: Run) -> None:
    """The canary release, merged: its pull request's commit is main on origin."""
    assert run("canary", "--stack", "prod", "--image", CANARY, "--weight", "10").code == 0
    git(repo, "push", "-q", "origin", "HEAD:main")
    git(repo, "switch", "-q", "--force-create", "main", "HEAD")


def subjects(origin: Path, ref: str) -> list[str]:
    return git(origin, "log", "--reverse", "--format=%s", f"main..{ref}").splitlines()


def test_every_step_is_pushed_before_it_is_applied(repo: Path, run: Run, prometheus: PromServer) -> None:
    start_canary_on_main(repo, run)
    prometheus.traffic.set(HEALTHY)
    time.sleep(3.6)
    origin = origin_of(repo)
    seen: list[tuple[int, bool]] = []

    def applier(stack: str) -> None:
        # What the cluster is about to get must already be on the remote branch.
        pushed = git(origin, "show", f"{BRANCH}:Pulumi.{stack}.yaml")
        here = (repo / f"Pulumi.{stack}.yaml").read_text()
        seen.append((load_stack_file(repo / f"Pulumi.{stack}.yaml").canary.weight, pushed == here))

    sf_path = repo / "Pulumi.prod.yaml"
    plan = RolloutPlan.build("prod", load_rollout_config(sf_path), [25, 50, 100], "3s")
    with Prometheus(prometheus.url) as prom:
        done = rollout.run(repo, plan, prom, applier, recorder=Recorder(repo, push=True))
    assert done
    assert seen == [(25, True), (50, True), (0, True)]
    entries = history.read(repo, "prod")
    assert subjects(origin, BRANCH) == [
        f"release(prod): rollout-step {entries[1].id} — step 1/2 at 25%",
        f"release(prod): rollout-step {entries[2].id} — step 2/2 at 50%",
        f"release(prod): rollout-complete {entries[3].id} — complete",
    ]
    assert git(repo, "status", "--porcelain").strip() == ""


def test_a_cancelled_rollout_resumes_from_its_last_commit(
    repo: Path, run: Run, prometheus: PromServer, tmp_path: Path
) -> None:
    start_canary_on_main(repo, run)
    prometheus.traffic.set(HEALTHY)
    time.sleep(3.6)
    origin = origin_of(repo)

    def argv(root: Path) -> list[str]:
        steps = ("--steps", "25,50,100", "--interval", "3s", "--prometheus", prometheus.url, "--push")
        return [
            sys.executable,
            "-m",
            "infra",
            "release",
            "--root",
            str(root),
            "rollout",
            "--stack",
            "prod",
            *steps,
        ]

    log = tmp_path / "first-run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv(repo), cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while len(pushed := _subjects_or_none(origin)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)  # cancelled during step 2's analysis window
    proc.wait(timeout=30)
    last = git(origin, "log", "-1", "--format=%B", BRANCH)
    assert "Rollout-Step: step 2/2 at 50%" in last
    assert "the rollout stopped during this step: rerun it to resume here" in " ".join(last.split())
    assert len(pushed) == 2

    # The rerun is a fresh checkout of main, as on a new CI runner.
    clone = tmp_path / "rerun"
    subprocess.run(
        ["git", "clone", "-q", "--branch", "main", str(origin), str(clone)], check=True, timeout=60
    )
    done = subprocess.run(argv(clone), cwd=REPO, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rollout: on {BRANCH}, which an earlier run started" in done.stdout
    assert "rollout: resuming step 2/2 at 50%" in done.stdout
    assert "rollout: COMPLETE" in done.stdout
    assert git(clone, "branch", "--show-current") == "main\n"  # run in a work tree of its own
    git(clone, "switch", "-q", BRANCH)
    actions = [e.action for e in history.read(clone, "prod")]
    assert actions == ["canary", "rollout-step", "rollout-step", "rollout-complete"]  # step 2 not repeated
    assert [s.split(" — ")[-1] for s in subjects(origin, BRANCH)] == [
        "step 1/2 at 25%",
        "step 2/2 at 50%",
        "complete",
    ]
    config = load_stack_file(clone / "Pulumi.prod.yaml")
    assert (config.image, config.canary.weight, config.canary.image) == (CANARY, 0, None)

    # A third run (say, a retried job) after the end changes nothing.
    third = tmp_path / "third"
    subprocess.run(
        ["git", "clone", "-q", "--branch", "main", str(origin), str(third)], check=True, timeout=60
    )
    again = subprocess.run(argv(third), cwd=REPO, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already ended" in again.stdout and "rollout-complete" in again.stdout
    assert len(subjects(origin, BRANCH)) == 3


def _subjects_or_none(origin: Path) -> list[str]:
    found = subprocess.run(
        ["git", "log", "--format=%s", f"main..{BRANCH}"], cwd=origin, capture_output=True, text=True
    )
    return found.stdout.splitlines() if found.returncode == 0 else []


def test_an_abort_is_committed_and_pushed_like_a_step(repo: Path, run: Run, prometheus: PromServer) -> None:
    start_canary_on_main(repo, run)
    prometheus.traffic.set(steady(canary_ok=10.0, canary_failed=10.0))
    time.sleep(3.6)
    origin = origin_of(repo)
    plan = RolloutPlan.build("prod", load_rollout_config(repo / "Pulumi.prod.yaml"), [25, 50, 100], "3s")
    with Prometheus(prometheus.url) as prom:
        assert not rollout.run(repo, plan, prom, recorder=Recorder(repo, push=True))
    last = history.read(repo, "prod")[-1]
    where = "aborted at step 1/2 at 25%"
    assert subjects(origin, BRANCH)[-1] == f"release(prod): rollout-abort {last.id} — {where}"
    trailers = git(origin, "log", "-1", "--format=%(trailers:only,unfold)", BRANCH)
    assert "Release-Action: rollout-abort" in trailers and f"Rollout-Step: {where}" in trailers
    pushed = git(origin, "show", f"{BRANCH}:Pulumi.prod.yaml")
    assert pushed == (repo / "Pulumi.prod.yaml").read_text()
    assert load_stack_file(repo / "Pulumi.prod.yaml").canary.image is None
