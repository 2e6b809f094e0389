"""A stale release cannot merge: `release check-base` on two competing releases of one stack."""

from __future__ import annotations

from pathlib import Path

from release_testkit import Run, digest, git, release_branches

from infra.tools.release import stale


def branch_of(repo: Path, stack: str, before: list[str]) -> str:
    (branch,) = [b for b in release_branches(repo) if b not in before and b.startswith(f"release/{stack}/")]
    return branch


def check(run: Run, repo: Path, branch: str) -> tuple[int, str, str]:
    """The PR check as CI runs it: the release branch checked out, origin's main fetched."""
    git(repo, "switch", "-q", "--detach", branch)
    git(repo, "fetch", "-q", "origin")
    result = run("check-base", "--base", "origin/main", merged=False)
    git(repo, "switch", "-q", "main")
    return result.code, result.out, result.err


def test_the_second_of_two_competing_releases_must_be_cut_again(repo: Path, run: Run) -> None:
    made: list[str] = []
    for stack, argv in (
        ("prod", ("pin", "--stack", "prod", "--image", digest("a"))),
        ("prod", ("canary", "--stack", "prod", "--image", digest("b"), "--weight", "10")),
        ("staging", ("pin", "--stack", "staging", "--image", digest("c"))),
    ):
        assert run(*argv, merged=False).code == 0  # all three cut from the same main
        made.append(branch_of(repo, stack, made))
    first, second, other = made
    for branch in made:
        assert check(run, repo, branch)[0] == 0  # nothing merged yet: each is current
    git(repo, "push", "-q", "origin", f"{first}:main")  # the first pull request merges
    code, out, err = check(run, repo, second)
    assert code == 1
    assert err.splitlines()[0] == "rebase: prod changed since this release was cut"
    code, out, err = check(run, repo, other)
    assert (code, err) == (0, "") and "staging was cut from origin/main's current Pulumi.staging.yaml" in out
    # Cut again from the new main, the release passes.
    assert run("canary", "--stack", "prod", "--image", digest("b"), "--weight", "10", merged=False).code == 0
    again = branch_of(repo, "prod", made)
    assert check(run, repo, again)[0] == 0
    assert stale.recorded_bases(repo, "origin/main", again) == {
        "prod": git(repo, "rev-parse", "origin/main:Pulumi.prod.yaml").strip()
    }


def test_a_branch_without_release_commits_passes(repo: Path, run: Run) -> None:
    result = run("check-base", "--base", "main", merged=False)
    assert result.code == 0 and "no release commits in main..HEAD; nothing to check" in result.out


def test_a_rollout_commit_without_the_trailer_counts_its_parent(repo: Path) -> None:
    git(repo, "switch", "-q", "-c", "release/prod/rollout-0123456789ab")
    prod = repo / "Pulumi.prod.yaml"
    prod.write_text(prod.read_text() + "# step\n")
    git(repo, "commit", "-qam", "step\n\nRelease-Stack: prod")
    assert stale.changed_since_cut(repo, "main") == ([], ["prod"])
