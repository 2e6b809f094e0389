"""``--json``: every release command prints one JSON document on stdout (docs/releases.md#json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from release_testkit import Run, digest, git

from infra.tools.release import cli

COMMON = ["schema", "command", "exitCode", "error", "releases", "pullRequests", "applied"]


def document(result: Any) -> dict[str, Any]:
    """stdout is exactly one JSON document; the human output went to stderr."""
    parsed: dict[str, Any] = json.loads(result.out)
    assert list(parsed)[: len(COMMON)] == COMMON
    assert parsed["exitCode"] == result.code
    return parsed


def test_every_command_takes_json() -> None:
    sub = next(a for a in cli.parser()._actions if a.dest == "command")
    for name, command in sub.choices.items():  # type: ignore[attr-defined]
        assert "--json" in command._option_string_actions, name


def test_a_release_reports_its_history_line_branch_and_commit(repo: Path, run: Run) -> None:
    result = run("pin", "--stack", "prod", "--image", digest("a"), "--json", "--push", merged=False)
    doc = document(result)
    assert (doc["command"], doc["exitCode"], doc["error"], doc["schema"]) == ("pin", 0, None, 1)
    (release,) = doc["releases"]
    assert release["action"] == "pin" and release["after"]["image"] == digest("a")
    assert release["branch"] == f"release/prod/{release['id']}" and release["pushed"] is True
    assert release["commit"] == git(repo, "rev-parse", release["branch"]).strip()
    assert "+++ b/Pulumi.prod.yaml" in result.err  # the diff, on stderr
    assert doc["pullRequests"] == [] and doc["applied"] == []


def test_without_git_the_release_has_no_branch(repo: Path, run: Run) -> None:
    doc = document(
        run("canary", "--stack", "prod", "--image", digest("b"), "--weight", "10", "--no-git", "--json")
    )
    (release,) = doc["releases"]
    assert (release["action"], release["after"]["canary"], release["branch"]) == (
        "canary",
        {"weight": 10, "image": digest("b")},
        None,
    )


def test_nothing_to_do_is_an_empty_release_list(run: Run, repo: Path) -> None:
    image = (repo / "Pulumi.prod.yaml").read_text().split("mobius-preview-worker:image: ")[1].split()[0]
    doc = document(run("pin", "--stack", "prod", "--image", image, "--json"))
    assert doc["exitCode"] == 0 and doc["releases"] == []


def test_a_refusal_is_the_documents_error(run: Run) -> None:
    result = run("promote", "--from", "staging", "--to", "qa", "--json", deployed=lambda _s: None)
    doc = document(result)
    assert doc["exitCode"] == 1
    assert (
        doc["error"]
        == "release: refused: --to: no stack file Pulumi.qa.yaml in " + doc["error"].split(" in ")[-1]
    )


def test_a_malformed_stack_file_is_exit_2_in_json_too(repo: Path, run: Run) -> None:
    prod = repo / "Pulumi.prod.yaml"
    prod.write_text(prod.read_text().replace("config:\n", "config:\n  bad: : x\n", 1))
    for argv in (["status", "--stack", "prod"], ["history", "--stack", "prod"]):
        doc = document(run(*argv, "--json"))
        assert doc["exitCode"] == 2 and doc["error"].startswith("release: Pulumi.prod.yaml:")
        assert "not valid YAML" in doc["error"]


def test_history_lists_the_lines(run: Run) -> None:
    assert run("pin", "--stack", "prod", "--image", digest("a")).code == 0
    assert run("pin", "--stack", "prod", "--image", digest("b")).code == 0
    doc = document(run("history", "--stack", "prod", "--json"))
    assert doc["stack"] == "prod"
    assert [r["after"]["image"] for r in doc["releases"]] == [digest("a"), digest("b")]
    assert set(doc["releases"][0]) == {"id", "stack", "action", "time", "author", "reason", "before", "after"}


def test_status_json_has_every_part(run: Run) -> None:
    doc = document(run("status", "--stack", "prod", "--json"))
    assert [k for k in doc if k not in COMMON] == [
        "stack",
        "file",
        "deployed",
        "live",
        "branches",
        "warnings",
    ]
    assert doc["file"]["error"] is None and doc["file"]["values"]["releaseId"]
    assert list(doc["file"]["values"]) == ["image", "canary", "releaseId", "canaryWeight"]
    assert doc["branches"] == {"error": None, "values": []}
    assert isinstance(doc["deployed"]["error"], str) and isinstance(doc["live"]["error"], str)


def test_changed_and_check_base_report_their_answers(repo: Path, run: Run) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    (first,) = document(run("pin", "--stack", "prod", "--image", digest("a"), "--json", merged=False))[
        "releases"
    ]
    assert run("pin", "--stack", "prod", "--image", digest("b")).code == 0  # merged first
    head = git(repo, "rev-parse", "HEAD").strip()
    doc = document(run("changed", "--base", base, "--head", head, "--json"))
    assert (doc["stacks"], doc["image"]) == (["prod"], False)
    doc = document(run("check-base", "--base", "main", "--head", first["branch"], "--json"))
    assert (doc["stale"], doc["checked"], doc["exitCode"]) == (["prod"], ["prod"], 1)
    doc = document(run("check-base", "--base", base, "--head", "main", "--json"))
    assert (doc["stale"], doc["checked"], doc["exitCode"]) == ([], ["prod"], 0)


@pytest.mark.parametrize("flag", ["--json"])
def test_usage_errors_stay_argparse_exit_2(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["pin", "--stack", "prod", flag])
    assert exc.value.code == 2 and "--image" in capsys.readouterr().err
