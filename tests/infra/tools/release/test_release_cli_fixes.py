"""Small command-line fixes: --stack from $PULUMI_STACK, promote names --to/--from, malformed YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from release_testkit import Run, digest, git, release_branches, snapshot

from infra.tools.release import cli


def test_stack_defaults_from_pulumi_stack(repo: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_STACK", "staging")
    assert cli.parser().parse_args(["history"]).stack == "staging"
    assert cli.parser().parse_args(["history", "--stack", "prod"]).stack == "prod"
    assert run("pin", "--image", digest("a"), merged=False).code == 0
    assert [b.split("/")[1] for b in release_branches(repo)] == ["staging"]


def test_without_pulumi_stack_the_flag_is_required(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PULUMI_STACK", raising=False)
    with pytest.raises(SystemExit) as exc:
        cli.parser().parse_args(["history"])
    assert exc.value.code == 2 and "the following arguments are required: --stack" in capsys.readouterr().err


def test_promote_names_the_flag_of_an_unknown_stack(run: Run) -> None:
    result = run("promote", "--from", "staging", "--to", "qa", deployed=lambda _s: None)
    assert result.code == 1 and result.err.startswith("release: refused: --to: no stack file Pulumi.qa.yaml")
    result = run("promote", "--from", "qa", "--to", "prod", deployed=lambda _s: None)
    assert result.code == 1 and result.err.startswith(
        "release: refused: --from: no stack file Pulumi.qa.yaml"
    )


ARGVS = [
    ["pin", "--stack", "prod", "--image", digest("a")],
    ["canary", "--stack", "prod", "--weight", "10"],
    ["promote", "--from", "staging", "--to", "prod"],
    ["rollback", "--stack", "prod"],
    ["history", "--stack", "prod"],
    ["status", "--stack", "prod"],
    ["rollout", "--stack", "prod", "--prometheus", "http://127.0.0.1:9"],
]


@pytest.mark.parametrize("argv", ARGVS, ids=lambda a: a[0])
def test_a_malformed_stack_file_names_file_and_line(repo: Path, run: Run, argv: list[str]) -> None:
    prod = repo / "Pulumi.prod.yaml"
    lines = prod.read_text().splitlines(keepends=True)
    lines.insert(5, "  bad: : x\n")  # line 6
    prod.write_text("".join(lines))
    git(repo, "commit", "-qam", "a broken stack file")
    git(repo, "push", "-q", "origin", "main")  # releases are cut from origin's main
    before = snapshot(repo)
    result = run(*argv, deployed=lambda _s: None)
    assert result.code == 2, result.err
    (line,) = result.err.splitlines()
    assert line == "release: Pulumi.prod.yaml:6: not valid YAML: mapping values are not allowed here"
    assert "Traceback" not in result.err
    assert snapshot(repo) == before and release_branches(repo) == []


def test_an_unknown_stack_is_refused_before_git_is_asked(repo: Path, run: Run) -> None:
    git(repo, "remote", "set-url", "origin", str(repo.parent / "nowhere.git"))  # a fetch would fail
    result = run("pin", "--stack", "qa", "--image", digest("a"))
    assert result.code == 1 and result.err.startswith(
        "release: refused: --stack: no stack file Pulumi.qa.yaml"
    )
    assert git(repo, "worktree", "list").count("\n") == 1
