"""Rollback as the team needs it: what it does not restore is said, and break-glass is recorded.

Real git (a bare origin on disk, a fresh clone as an on-call laptop or runner has); the
engine half of ``--apply`` runs for real in tests/e2e/test_engine_release.py and in
``python -m bench --only rollback``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from release_testkit import Run, digest, git, origin_of

from infra.tools.release import cli, history

D1, D2 = digest("1"), digest("2")


def raise_replicas_on_main(repo: Path) -> None:
    """A reviewed config change merged between two releases (not a release field)."""
    prod = repo / "Pulumi.prod.yaml"
    prod.write_text(prod.read_text().replace("    min: 4\n    max: 20\n", "    min: 4\n    max: 30\n", 1))
    git(repo, "commit", "-qam", "prod: more headroom")
    git(repo, "push", "-q", "origin", "main")


def test_rollback_says_what_it_does_not_restore(repo: Path, run: Run) -> None:
    assert run("pin", "--stack", "prod", "--image", D1).code == 0
    raise_replicas_on_main(repo)
    assert run("pin", "--stack", "prod", "--image", D2).code == 0
    first = history.read(repo, "prod")[0]
    result = run("rollback", "--stack", "prod")
    assert result.code == 0, result.err
    assert (
        f"rollback restored image, canary.weight, canary.image and releaseId as {first.id} had them; "
        "it did NOT restore:\n"
        f"  - mobius-preview-worker:replicas (changed since {first.id}; revert its pull request to undo it)\n"
        "  - the program (infra/, __main__.py, policy/) and what the stack reads from outside it (vault)\n"
    ) in result.out
    text = (repo / "Pulumi.prod.yaml").read_text()
    assert D1 in text and "max: 30" in text  # the release fields restored, the reviewed change kept
    # Walking back to before the first pin: nothing else changed since that release.
    result = run("rollback", "--stack", "prod")
    assert result.code == 0, result.err
    assert "  - (no other key of Pulumi.prod.yaml changed since r-20261120-01)\n" not in result.out
    assert "  - mobius-preview-worker:replicas (changed since r-20261120-01;" in result.out


def test_rollback_says_when_nothing_else_changed_since_that_release(repo: Path, run: Run) -> None:
    assert run("pin", "--stack", "prod", "--image", D1).code == 0
    result = run("rollback", "--stack", "prod", "--no-git")
    assert result.code == 0, result.err
    assert "  - (no other key of Pulumi.prod.yaml changed since r-20261120-01)\n" in result.out


def test_break_glass_rollback_from_a_fresh_clone_is_pushed_applied_then_proposed(
    repo: Path, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("pin", "--stack", "prod", "--image", D1).code == 0
    assert run("pin", "--stack", "prod", "--image", D2).code == 0  # merged; D2 is live, and bad
    origin = origin_of(repo)
    fresh = tmp_path / "on-call"
    subprocess.run(["git", "clone", "-q", "--branch", "main", str(origin), str(fresh)], check=True)
    # GitHub is not reachable: this stand-in `gh` records its arguments and the body on stdin.
    bin_dir, calls = tmp_path / "bin", tmp_path / "gh-calls"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {shlex.quote(str(calls))}\ncat > {shlex.quote(str(calls))}.body\n'
        "echo https://github.com/mobius/preview-worker/pull/9\n"
    )
    (bin_dir / "gh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    seen: list[dict[str, object]] = []

    def fake_apply(root: Path, stack: str) -> None:
        # When `pulumi up` starts, the record is already on the remote and no PR claims it applied.
        pushed = git(origin, "for-each-ref", "--format=%(refname:short)", "refs/heads/release/prod/").split()
        (branch,) = [b for b in pushed if b.startswith("release/prod/r-")]
        line = git(origin, "show", f"{branch}:releases/prod.jsonl").splitlines()[-1]
        seen.append({"branch": branch, "line": json.loads(line), "pr": calls.exists(),
                     "file": (root / f"Pulumi.{stack}.yaml").read_text()})  # fmt: skip

    monkeypatch.setattr(cli.engine, "apply", fake_apply)
    code = cli.main(["--root", str(fresh), "rollback", "--stack", "prod", "--apply", "--reason", "D2 is bad"])
    assert code == 0
    ((applied),) = seen
    entry = applied["line"]
    assert isinstance(entry, dict) and entry["action"] == "rollback" and entry["reason"] == "D2 is bad"
    assert entry["details"] == {"restores": history.read(repo, "prod")[0].id, "applied": cli.APPLIED}
    assert applied["pr"] is False and D1 in str(applied["file"]) and D2 not in str(applied["file"])
    assert calls.read_text().splitlines()[:6] == [
        "pr",
        "create",
        "--base",
        "main",
        "--head",
        applied["branch"],
    ]
    assert "Already applied with `--apply` (break-glass)" in Path(f"{calls}.body").read_text()
    assert git(fresh, "branch", "--show-current").strip() == "main"  # the clone's checkout untouched
    assert git(fresh, "status", "--porcelain") == ""
