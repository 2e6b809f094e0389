"""Release IDs never collide: two clones of one origin release the same stack on the same day."""

from __future__ import annotations

import re
import subprocess
from datetime import date
from pathlib import Path

import pytest
from release_testkit import Run, digest, git, origin_of, release_branches
from test_release_branches import without_gh

from infra.tools.release import cli, history


def clone(repo: Path, where: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin_of(repo)), str(where)], check=True, timeout=60)
    return where


def release(root: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["--root", str(root), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_two_clones_releasing_one_stack_the_same_day_get_distinct_ids_and_both_push(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", without_gh())
    alice, bob = clone(repo, tmp_path / "alice"), clone(repo, tmp_path / "bob")
    outs = []
    for who, image in ((alice, digest("a")), (bob, digest("b"))):
        code, out, err = release(who, capsys, "pin", "--stack", "prod", "--image", image, "--push")
        assert code == 0, err
        outs.append(out)
    (a_branch,), (b_branch,) = release_branches(alice), release_branches(bob)
    assert a_branch != b_branch
    day = f"r-{date.today():%Y%m%d}"
    # Bob's clone saw Alice's pushed branch on the remote: the day's sequence goes on.
    assert re.fullmatch(rf"release/prod/{day}-01-[0-9a-f]{{4}}", a_branch)
    assert re.fullmatch(rf"release/prod/{day}-02-[0-9a-f]{{4}}", b_branch)
    origin = origin_of(repo)
    for who, branch, out in ((alice, a_branch, outs[0]), (bob, b_branch, outs[1])):
        assert git(origin, "rev-parse", branch).strip() == git(who, "rev-parse", branch).strip()
        # No gh here: each prints the command that opens its pull request.
        assert f"gh pr create --base main --head {branch} --title 'release(prod): pin " in out


def test_clones_that_have_not_seen_each_other_still_differ(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both cut before either pushes (same day, same sequence number): the random part keeps them apart."""
    alice, bob = clone(repo, tmp_path / "alice"), clone(repo, tmp_path / "bob")
    for who, image in ((alice, digest("a")), (bob, digest("b"))):
        code, _out, err = release(who, capsys, "pin", "--stack", "prod", "--image", image)
        assert code == 0, err
    (a_branch,), (b_branch,) = release_branches(alice), release_branches(bob)
    assert a_branch.rsplit("-", 1)[0] == b_branch.rsplit("-", 1)[0]  # same day and number
    assert a_branch != b_branch
    for who, branch in ((alice, a_branch), (bob, b_branch)):
        git(who, "push", "-q", "origin", branch)
    assert git(origin_of(repo), "branch", "--list", "release/*").split() == sorted([a_branch, b_branch])


def test_a_refused_push_says_what_happened_in_one_line(
    repo: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", without_gh())
    hook = origin_of(repo) / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branch protection says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = run("pin", "--stack", "prod", "--image", digest("a"), "--push", merged=False)
    assert result.code == 1
    (line,) = result.err.splitlines()
    (branch,) = release_branches(repo)
    assert line == (
        f"release: refused: origin refused the push of {branch} "
        f"([remote rejected] HEAD -> {branch} (pre-receive hook declined)): the commit is on {branch} "
        "in this clone; delete that branch and rerun the command for a new release ID"
    )


def test_ids_count_unmerged_branches_and_old_ids_keep_working() -> None:
    day = date(2026, 11, 23)
    taken = ["r-20261123-04-0a1b", "r-20261122-09-ffff", "rollout-0123456789ab"]
    assert history.next_id([], "r-20261123-02", day, taken, "c3d4") == "r-20261123-05-c3d4"
    assert history.next_id([], "r-20261123-07", day, taken) == "r-20261123-08"
    assert history.next_id([], None, date(2026, 11, 24), taken, "0000") == "r-20261124-01-0000"


def test_rollback_to_an_old_style_id_still_works(repo: Path, run: Run) -> None:
    prod = repo / "Pulumi.prod.yaml"
    original = prod.read_bytes()
    assert run("pin", "--stack", "prod", "--image", digest("a")).code == 0  # merged
    (entry,) = history.read(repo, "prod")
    assert entry.before.release_id is not None and re.fullmatch(r"r-\d{8}-\d{2}", entry.before.release_id)
    assert run("rollback", "--stack", "prod", "--to", entry.before.release_id).code == 0
    assert prod.read_bytes() == original
    assert "r-" in run("history", "--stack", "prod").out
