"""A rollout is never silently reverted: ``release guard`` and a rollout cut from the remote's main.

Real git (a bare origin on disk and fresh clones, as CI's runners are) and a real Prometheus
for the rollout's analysis; the engine half is in tests/e2e/test_engine_rollout.py.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path

import pytest
from release_promkit import PromServer, steady
from release_testkit import Run, digest, git, origin_of

from infra.tools.release import branches, cli, history, rollout
from infra.tools.release.analysis import load_rollout_config
from infra.tools.release.branches import Recorder
from infra.tools.release.promapi import Prometheus
from infra.tools.release.rollout import RolloutPlan

CANARY = digest("c")
BRANCH = branches.rollout_branch("prod", CANARY)


class Stopped(Exception):
    """The rollout job was cancelled during its step."""


def clone(origin: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", "--branch", "main", str(origin), str(dest)], check=True, timeout=60)
    return dest


def guard(root: Path, capsys: pytest.CaptureFixture[str], stack: str = "prod") -> tuple[int, str]:
    """``release guard`` as main.yml runs it, in a fresh clone of the merge; exit code and output."""
    capsys.readouterr()
    code = cli.main(["--root", str(root), "guard", "--stack", stack])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def merge_to_main(origin: Path, where: Path, branch: str | None = None, program: bool = False) -> None:
    """A pull request merges on GitHub: a program change, or ``branch`` with a merge commit."""
    work = clone(origin, where)
    if program:
        (work / "Pulumi.yaml").write_text((work / "Pulumi.yaml").read_text() + "# a program change\n")
        git(work, "commit", "-qam", "a program change")
    else:
        git(work, "fetch", "-q", "origin", f"refs/heads/{branch}")
        git(work, "merge", "-q", "--no-ff", "-m", f"Merge {branch}", "FETCH_HEAD")
    git(work, "push", "-q", "origin", "main")


def test_main_deploys_are_refused_until_the_rollout_is_in_main(
    repo: Path, run: Run, prometheus: PromServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin = origin_of(repo)
    prometheus.traffic.set(steady(canary_ok=20.0, canary_failed=0.1))
    time.sleep(3.6)  # one whole analysis window of healthy traffic
    assert run("canary", "--stack", "prod", "--image", CANARY, "--weight", "10").code == 0  # merged
    assert guard(clone(origin, tmp_path / "c0"), capsys) == (
        0,
        "guard: no rollout of prod outside origin/main; deploying its Pulumi.prod.yaml undoes nothing\n",
    )
    plan = RolloutPlan.build("prod", load_rollout_config(repo / "Pulumi.prod.yaml"), [25, 100], "3s")

    def cancelled(_stack: str) -> None:
        raise Stopped  # pushed, then the job dies before or during its `pulumi up`

    with Prometheus(prometheus.url) as prom, pytest.raises(Stopped):
        rollout.run(repo, plan, prom, cancelled, out=io.StringIO(), recorder=Recorder(repo, push=True))
    step = history.read(repo, "prod")[-1]
    assert step.action == "rollout-step" and git(origin, "rev-parse", "--verify", BRANCH)

    # Meanwhile a program change merges: its deploy of prod would put the 10 % canary back.
    merge_to_main(origin, tmp_path / "c1", program=True)
    code, said = guard(clone(origin, tmp_path / "c2"), capsys)
    assert code == 1
    assert said.splitlines()[0] == (
        f"guard: refusing to deploy prod: rollout {BRANCH} is not in origin/main (last commit: "
        f"step 1/1 at 25%, release {step.id}); origin/main's Pulumi.prod.yaml would undo what it applied"
    )
    assert guard(clone(origin, tmp_path / "c3"), capsys, "staging")[0] == 0  # other stacks deploy
    capsys.readouterr()
    fresh = clone(origin, tmp_path / "c3j")
    assert cli.main(["--root", str(fresh), "guard", "--stack", "prod", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert (doc["command"], doc["stack"], doc["base"]) == ("guard", "prod", "origin/main")
    assert doc["openRollouts"] == [{"branch": BRANCH, "releaseId": step.id, "step": "step 1/1 at 25%"}]

    # The rollout is resumed and ends; until its pull request merges, main is still behind it.
    resumed = clone(origin, tmp_path / "c4")
    with Prometheus(prometheus.url) as prom:
        rollout.run(resumed, plan, prom, out=io.StringIO(), recorder=Recorder(resumed, push=True))
    assert history.read(resumed, "prod")[-1].action == "rollout-complete"
    code, said = guard(clone(origin, tmp_path / "c5"), capsys)
    assert code == 1 and "(last commit: complete, release" in said

    merge_to_main(origin, tmp_path / "c6", branch=BRANCH)  # its pull request merges
    assert guard(clone(origin, tmp_path / "c7"), capsys)[0] == 0


def test_a_fresh_rollout_is_cut_from_the_remote_main_and_leaves_the_checkout_alone(
    repo: Path, run: Run, prometheus: PromServer, tmp_path: Path
) -> None:
    origin = origin_of(repo)
    stale = clone(origin, tmp_path / "stale")  # cloned before the canary merged
    git(stale, "switch", "-q", "-c", "my-feature")
    assert run("canary", "--stack", "prod", "--image", CANARY, "--weight", "10").code == 0  # merged
    merge_to_main(origin, tmp_path / "other", program=True)  # and a later merge
    tip = git(origin, "rev-parse", "main").strip()
    argv = ["--root", str(stale), "rollout", "--stack", "prod", "--steps", "100", "--interval", "3s"]
    assert cli.main([*argv, "--prometheus", prometheus.url, "--push"]) == 0
    assert git(origin, "rev-parse", f"{BRANCH}~1").strip() == tip  # one commit on origin's main
    assert git(origin, "log", "-1", "--format=%s", BRANCH).endswith("— complete\n")
    assert git(stale, "branch", "--show-current").strip() == "my-feature"
    assert git(stale, "status", "--porcelain") == ""
    assert history.read(stale, "prod") == []  # the checkout never saw the canary release


def test_a_refused_guard_names_a_malformed_history_without_a_traceback(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "switch", "-q", "-c", BRANCH)
    (repo / "releases").mkdir(exist_ok=True)
    (repo / "releases" / "prod.jsonl").write_text("{not json\n")
    git(repo, "add", "releases")
    git(repo, "commit", "-qm", "broken")
    git(repo, "push", "-q", "origin", BRANCH)
    code, said = guard(clone(origin_of(repo), tmp_path / "c"), capsys)
    assert code == 1 and ":releases/prod.jsonl:1: not a release entry" in said
    assert "Traceback" not in said


def test_guard_refuses_what_is_not_a_stack(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, said = guard(repo, capsys, "../etc")
    assert (code, said) == (
        1,
        "release: refused: --stack: '../etc' is not a stack name (lowercase letters, digits, '-', '_')\n",
    )


def test_without_a_remote_the_clone_s_own_rollout_branches_count(
    repo: Path, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("canary", "--stack", "prod", "--image", CANARY, "--weight", "10", merged=False).code == 0
    (made,) = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/release/prod/").split()
    git(repo, "remote", "remove", "origin")  # a local demo
    assert guard(repo, capsys)[0] == 0  # a release branch is not a rollout
    git(repo, "branch", "-m", made, BRANCH)
    code, said = guard(repo, capsys)
    assert code == 1 and f"rollout {BRANCH} is not in main (last commit: canary, release" in said
    git(repo, "merge", "-q", "--ff-only", BRANCH)
    assert guard(repo, capsys)[0] == 0
