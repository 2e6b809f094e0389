"""A release is a pull request: a commit on its own branch, pushed to a real (bare, on-disk) origin."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from release_testkit import AUTHOR, Run, digest, git, origin_of, release_branches, snapshot

from infra.tools.release import cli, history

D_NEW = digest("e")


def commit_files(repo: Path, ref: str) -> list[str]:
    return git(repo, "show", "--format=", "--name-only", ref).split()


def release_entry(repo: Path, stack: str) -> history.Entry:
    """The last history line on the clone's one release branch of ``stack``."""
    (branch,) = [b for b in release_branches(repo) if b.startswith(f"release/{stack}/")]
    line = git(repo, "show", f"{branch}:releases/{stack}.jsonl").splitlines()[-1]
    return history.Entry.from_json(json.loads(line))


def test_a_release_is_one_commit_on_a_branch_named_for_it(repo: Path, run: Run) -> None:
    main_head = git(repo, "rev-parse", "main").strip()
    base_blob = git(repo, "rev-parse", "main:Pulumi.prod.yaml").strip()
    result = run("pin", "--stack", "prod", "--image", D_NEW, "--reason", "ship build 42", merged=False)
    assert result.code == 0, result.err
    entry = release_entry(repo, "prod")
    branch = f"release/prod/{entry.id}"
    assert re.fullmatch(r"r-\d{8}-01-[0-9a-f]{4}", entry.id)
    assert git(repo, "branch", "--show-current").strip() == "main"  # the checkout is left alone
    assert git(repo, "rev-parse", "main").strip() == main_head  # main is never written
    assert git(repo, "rev-list", "--count", f"main..{branch}").strip() == "1"
    assert commit_files(repo, branch) == ["Pulumi.prod.yaml", "releases/prod.jsonl"]
    assert git(repo, "status", "--porcelain").strip() == ""
    assert git(repo, "worktree", "list").count("\n") == 1  # the release's own work tree is gone
    assert "cut from origin/main in a work tree of its own: this checkout is unchanged" in result.out
    subject, *body = git(repo, "log", "-1", "--format=%B", branch).splitlines()
    assert subject == f"release(prod): pin {entry.id}"
    assert "ship build 42" in body
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", branch).split("\n")
    assert [t for t in trailers if t] == [
        f"Release-Id: {entry.id}",
        "Release-Stack: prod",
        "Release-Action: pin",
        f"Release-Base: {base_blob}",
    ]
    assert git(repo, "log", "-1", "--format=%an <%ae>", branch).strip() == AUTHOR
    # Not pushed: the command says how to push and open the pull request.
    assert git(origin_of(repo), "branch", "--list", branch).strip() == ""
    assert f"git push origin {branch}" in result.out
    assert f"gh pr create --base main --head {branch} --title 'release(prod): pin {entry.id}'" in result.out


def test_push_sends_the_branch_to_origin(repo: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", without_gh())
    result = run("pin", "--stack", "staging", "--image", D_NEW, "--push", merged=False)
    assert result.code == 0, result.err
    entry = release_entry(repo, "staging")
    branch = f"release/staging/{entry.id}"
    origin = origin_of(repo)
    assert git(origin, "rev-parse", branch).strip() == git(repo, "rev-parse", branch).strip()
    assert git(origin, "show", f"{branch}:releases/staging.jsonl").count("\n") == 1
    assert "and pushed" in result.out
    assert "git push" not in result.out  # already pushed; only the pull request is left to open
    assert f"gh pr create --base main --head {branch}" in result.out


def test_push_opens_the_pull_request_with_gh(
    repo: Path, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GitHub is not reachable from here: this stand-in `gh` records its arguments and the body it
    # was given on stdin, and answers with a pull request URL as the real one does.
    bin_dir, calls = tmp_path / "bin", tmp_path / "gh-calls"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {shlex.quote(str(calls))}\n'
        f"cat > {shlex.quote(str(calls))}.body\n"
        "echo https://github.com/mobius/preview-worker/pull/7\n"
    )
    gh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{without_gh()}")
    result = run("promote", "--from", "staging", "--to", "prod", "--canary", "10", "--push",
                 deployed=lambda _stack: None)  # fmt: skip
    assert result.code == 1 and "refusing to promote" in result.err  # the gate still applies first
    staging = (repo / "Pulumi.staging.yaml").read_text()
    image = next(line.split(": ", 1)[1] for line in staging.splitlines() if "preview-worker:image:" in line)
    result = run("promote", "--from", "staging", "--to", "prod", "--canary", "10", "--push",
                 "--reason", "ok by QA", deployed=lambda _stack: image, merged=False)  # fmt: skip
    assert result.code == 0, result.err
    entry = release_entry(repo, "prod")
    branch = f"release/prod/{entry.id}"
    argv = calls.read_text().splitlines()
    assert argv == ["pr", "create", "--base", "main", "--head", branch, "--title",
                    f"release(prod): promote {entry.id}", "--body-file", "-"]  # fmt: skip
    body = Path(f"{calls}.body").read_text()
    assert "ok by QA" in body and "merging runs `pulumi up --stack prod`" in body
    assert "pull request: https://github.com/mobius/preview-worker/pull/7" in result.out
    assert git(origin_of(repo), "rev-parse", branch).strip() == git(repo, "rev-parse", branch).strip()


def test_a_release_pr_holds_only_its_release_whatever_the_clone_state(repo: Path, run: Run) -> None:
    """pin staging, then canary prod in the same clone: two branches of one commit each on origin's main."""
    git(repo, "switch", "-q", "-c", "my-work")
    prod = repo / "Pulumi.prod.yaml"
    prod.write_text(prod.read_text() + "# a hand edit, not committed\n")
    edited = snapshot(repo)
    assert run("pin", "--stack", "staging", "--image", D_NEW, merged=False).code == 0
    assert run("canary", "--stack", "prod", "--image", digest("f"), "--weight", "10", merged=False).code == 0
    origin_main = git(origin_of(repo), "rev-parse", "main").strip()
    found = release_branches(repo)
    assert [b.split("/")[1] for b in found] == ["prod", "staging"]
    for branch in found:
        stack = branch.split("/")[1]
        assert git(repo, "rev-list", "--parents", "-n", "1", branch).split()[1] == origin_main
        assert git(repo, "rev-list", "--count", f"{origin_main}..{branch}").strip() == "1"
        assert commit_files(repo, branch) == [f"Pulumi.{stack}.yaml", f"releases/{stack}.jsonl"]
        assert "# a hand edit" not in git(repo, "show", f"{branch}:Pulumi.prod.yaml")
    assert git(repo, "branch", "--show-current").strip() == "my-work"
    assert snapshot(repo) == edited  # the uncommitted edit is intact, no release file written here
    assert git(repo, "status", "--porcelain").strip() == "M Pulumi.prod.yaml"


def test_a_release_is_cut_from_the_remote_main_not_the_local_one(
    repo: Path, run: Run, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(origin_of(repo)), str(other)], check=True, timeout=60)
    assert run("pin", "--stack", "dev", "--image", D_NEW).code == 0  # merged: origin's main moved
    # `other`'s main is now behind origin's: the release is cut from origin's.
    assert cli.main(["--root", str(other), "pin", "--stack", "dev", "--image", digest("f")]) == 0
    (branch,) = release_branches(other)
    assert git(other, "rev-parse", f"{branch}~1").strip() == git(origin_of(repo), "rev-parse", "main").strip()


def test_without_a_remote_the_release_is_cut_from_the_local_main(repo: Path, run: Run) -> None:
    git(repo, "remote", "remove", "origin")
    assert run("pin", "--stack", "dev", "--image", D_NEW, merged=False).code == 0
    git(repo, "switch", "-q", release_branches(repo)[0])  # standing on a release branch
    assert run("pin", "--stack", "prod", "--image", D_NEW, merged=False).code == 0
    prod = next(b for b in release_branches(repo) if b.startswith("release/prod/"))
    assert git(repo, "rev-parse", f"{prod}~1").strip() == git(repo, "rev-parse", "main").strip()


def test_outside_a_work_tree_only_no_git_edits(tmp_path: Path, run: Run, repo: Path) -> None:
    shutil.rmtree(repo / ".git")
    before = snapshot(repo)  # (the run fixture merges nothing without .git)
    result = run("pin", "--stack", "dev", "--image", D_NEW)
    assert result.code == 1 and "not a git work tree" in result.err and "--no-git" in result.err
    assert snapshot(repo) == before
    result = run("pin", "--stack", "dev", "--image", D_NEW, "--no-git")
    assert result.code == 0, result.err
    assert history.read(repo, "dev")[0].after.image == D_NEW
    assert "pulumi up --stack dev" in result.out


def test_push_and_no_git_exclude_each_other(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.parser().parse_args(["pin", "--stack", "dev", "--image", D_NEW, "--push", "--no-git"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_apply_is_recorded_in_the_history_and_the_commit(
    repo: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine half of --apply runs for real in tests/e2e/test_engine_release.py; here the
    # applier records when it ran, to show the commit exists by then.
    heads: list[str] = []
    applied: list[str] = []
    remote: list[str] = []

    def fake_apply(root: Path, stack: str) -> None:
        heads.append(git(root, "rev-parse", "HEAD"))
        applied.append((root / f"Pulumi.{stack}.yaml").read_text())  # the files `pulumi up` reads
        remote.append(git(root, "ls-remote", "--heads", "origin"))

    monkeypatch.setattr(cli.engine, "apply", fake_apply)
    monkeypatch.setenv("PATH", without_gh())  # --apply pushes; the pull request is printed, not opened
    result = run("pin", "--stack", "dev", "--image", D_NEW, "--apply", "--reason", "hotfix", merged=False)
    assert result.code == 0, result.err
    entry = release_entry(repo, "dev")
    assert entry.details == {"applied": cli.APPLIED}
    branch = f"release/dev/{entry.id}"
    assert heads == [git(repo, "rev-parse", branch)]
    assert applied == [git(repo, "show", f"{branch}:Pulumi.dev.yaml")]
    assert commit_files(repo, branch) == ["Pulumi.dev.yaml", "releases/dev.jsonl"]
    assert f"{heads[0].strip()}\trefs/heads/{branch}" in remote[0]  # pushed before `pulumi up`


def without_gh() -> str:
    """PATH without any directory that holds a ``gh`` (this machine may or may not have one)."""
    return os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "gh").exists()
    )
