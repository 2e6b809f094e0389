"""What a merge deploys (``release changed``), on real commits of a real git repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from release_testkit import Run, git

from infra.tools.release import changes


@pytest.mark.parametrize(
    ("paths", "stacks", "image"),
    [
        (["Pulumi.prod.yaml", "releases/prod.jsonl"], ["prod"], False),
        (["Pulumi.staging.yaml", "Pulumi.prod.yaml"], ["staging", "prod"], False),
        (["Pulumi.dev.yaml"], [], False),  # the local stack: never deployed by CI
        (["infra/components/tracks.py"], ["staging"], False),
        (["policy/rules.py"], ["staging"], False),
        (["worker/constants.py"], ["staging"], True),  # names both halves share
        (["worker/render.py"], [], True),  # a new image: built, then pinned by its own PR
        (
            [
                "infra/tools/release/cli.py",
                "infra/tools/local/toolchain/versions.py",
                "docs/releases.md",
                "tests/x.py",
            ],
            [],
            False,
        ),
        (["releases/prod.jsonl"], [], False),
    ],
)
def test_stacks_and_image_for_changed_paths(paths: list[str], stacks: list[str], image: bool) -> None:
    assert changes.stacks_to_deploy(paths) == stacks
    assert changes.image_changed(paths) is image


def test_changed_reads_the_merge_from_git(repo: Path, run: Run) -> None:
    before = git(repo, "rev-parse", "HEAD").strip()
    (repo / "infra").mkdir()
    (repo / "infra" / "worker.py").write_text("# program\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "program change")
    result = run("changed", "--base", before, "--head", "HEAD")
    assert (result.code, result.out) == (0, 'stacks=["staging"]\nimage=false\n')


def test_changed_refuses_what_is_not_a_commit(repo: Path, run: Run) -> None:
    result = run("changed", "--base", "main;rm -rf /", "--head", "HEAD")
    assert result.code == 1 and "BASE: 'main;rm -rf /' is not a commit SHA" in result.err
    result = run("changed", "--base", "0" * 40, "--head", "HEAD")
    assert result.code == 1 and "git diff" in result.err
