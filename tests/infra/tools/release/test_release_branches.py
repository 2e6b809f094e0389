"""A release is a pull request: a commit on its own branch, pushed to a real (bare, on-disk) origin."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import pytest
from release_testkit import AUTHOR, Run, digest, git, origin_of, snapshot

from infra.tools.release import cli, history

D_NEW = digest("e")


def commit_files(repo: Path, ref: str = "HEAD") -> list[str]:
    return git(repo, "show", "--format=", "--name-only", ref).split()


def test_a_release_is_one_commit_on_a_branch_named_for_it(repo: Path, run: Run) -> None:
    main_head = git(repo, "rev-parse", "main").strip()
    result = run("pin", "--stack", "prod", "--image", D_NEW, "--reason", "ship build 42")
    assert result.code == 0, result.err
    (entry,) = history.read(repo, "prod")
    branch = f"release/prod/{entry.id}"
    assert git(repo, "branch", "--show-current").strip() == branch
    assert git(repo, "rev-parse", "main").strip() == main_head  # main is never written
    assert git(repo, "rev-list", "--count", f"main..{branch}").strip() == "1"
    assert commit_files(repo) == ["Pulumi.prod.yaml", "releases/prod.jsonl"]
    assert git(repo, "status", "--porcelain").strip() == ""
    subject, *body = git(repo, "log", "-1", "--format=%B").splitlines()
    assert subject == f"release(prod): pin {entry.id}"
    assert "ship build 42" in body
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)").split("\n")
    assert [t for t in trailers if t] == [
        f"Release-Id: {entry.id}",
        "Release-Stack: prod",
        "Release-Action: pin",
    ]
    assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == AUTHOR
    # Not pushed: the command says how to push and open the pull request.
    assert git(origin_of(repo), "branch", "--list", branch).strip() == ""
    assert f"git push origin {branch}" in result.out
    assert f"gh pr create --base main --head {branch} --title 'release(prod): pin {entry.id}'" in result.out


def test_push_sends_the_branch_to_origin(repo: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", without_gh())
    result = run("pin", "--stack", "staging", "--image", D_NEW, "--push")
    assert result.code == 0, result.err
    (entry,) = history.read(repo, "staging")
    branch = f"release/staging/{entry.id}"
    origin = origin_of(repo)
    assert git(origin, "rev-parse", branch).strip() == git(repo, "rev-parse", "HEAD").strip()
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
                 "--reason", "ok by QA", deployed=lambda _stack: image)  # fmt: skip
    assert result.code == 0, result.err
    (entry,) = history.read(repo, "prod")
    branch = f"release/prod/{entry.id}"
    argv = calls.read_text().splitlines()
    assert argv == ["pr", "create", "--base", "main", "--head", branch, "--title",
                    f"release(prod): promote {entry.id}", "--body-file", "-"]  # fmt: skip
    body = Path(f"{calls}.body").read_text()
    assert "ok by QA" in body and "merging runs `pulumi up --stack prod`" in body
    assert "pull request: https://github.com/mobius/preview-worker/pull/7" in result.out
    assert git(origin_of(repo), "rev-parse", branch).strip() == git(repo, "rev-parse", "HEAD").strip()


def test_uncommitted_edits_of_the_stack_file_are_refused(repo: Path, run: Run) -> None:
    prod = repo / "Pulumi.prod.yaml"
    prod.write_text(prod.read_text() + "# a hand edit\n")
    before = snapshot(repo)
    result = run("pin", "--stack", "prod", "--image", D_NEW)
    assert result.code == 1
    assert "uncommitted changes in Pulumi.prod.yaml" in result.err
    assert snapshot(repo) == before
    assert git(repo, "branch", "--list", "release/*").strip() == ""


def test_a_second_unmerged_release_with_the_same_id_is_refused(repo: Path, run: Run) -> None:
    assert run("pin", "--stack", "prod", "--image", D_NEW).code == 0
    git(repo, "switch", "-q", "main")  # the first release's pull request is not merged yet
    before = snapshot(repo)
    result = run("pin", "--stack", "prod", "--image", digest("f"))
    assert result.code == 1
    assert "is not merged yet" in result.err and "release/prod/r-" in result.err
    assert snapshot(repo) == before


def test_outside_a_work_tree_only_no_git_edits(tmp_path: Path, run: Run, repo: Path) -> None:
    shutil.rmtree(repo / ".git")
    before = snapshot(repo)
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
    monkeypatch.setattr(cli.engine, "apply", lambda root, stack: heads.append(git(root, "rev-parse", "HEAD")))
    result = run("pin", "--stack", "dev", "--image", D_NEW, "--apply", "--reason", "hotfix")
    assert result.code == 0, result.err
    (entry,) = history.read(repo, "dev")
    assert entry.details == {"applied": cli.APPLIED}
    assert heads == [git(repo, "rev-parse", f"release/dev/{entry.id}")]
    assert commit_files(repo) == ["Pulumi.dev.yaml", "releases/dev.jsonl"]


def without_gh() -> str:
    """PATH without any directory that holds a ``gh`` (this machine may or may not have one)."""
    return os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "gh").exists()
    )
