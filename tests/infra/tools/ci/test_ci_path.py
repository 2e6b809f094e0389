"""``python -m infra ci path``: a pull request of stack files and release history takes the fast path.

Real git: a repository with a ``main`` and a pull request's branch, diffed as GitHub does
(from the merge base), through the command line pr.yml runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.tools.ci import path

REPO = Path(__file__).resolve().parents[4]
IDENTITY = {"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.test", "GIT_COMMITTER_NAME": "T",
            "GIT_COMMITTER_EMAIL": "t@example.test"}  # fmt: skip


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **IDENTITY}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout


def write(repo: Path, name: str, text: str = "x\n") -> None:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on ``main`` with a program, two stack files and a history; ``pr`` branched off it."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    for name in (
        "Pulumi.yaml",
        "Pulumi.prod.yaml",
        "Pulumi.staging.yaml",
        "releases/prod.jsonl",
        "infra/x.py",
    ):
        write(work, name)
    git(work, "add", ".")
    git(work, "commit", "-qm", "init")
    git(work, "switch", "-qc", "pr")
    return work


def ci_path(repo: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "infra", "ci", "path", "--root", str(repo), *argv],
        env=base, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def decide(repo: Path, edits: dict[str, str | None]) -> tuple[str, str]:
    """Commit ``edits`` (None deletes) on the pull request's branch; the command's output and reason."""
    for name, text in edits.items():
        if text is None:
            (repo / name).unlink()
        else:
            write(repo, name, text)
    git(repo, "add", "--all")
    git(repo, "commit", "-qm", "the pull request")
    done = ci_path(repo, "--base", "main")
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        ({"Pulumi.prod.yaml": "y\n", "releases/prod.jsonl": "x\ny\n"}, "fast"),  # a release or rollback
        ({"Pulumi.staging.yaml": "y\n", "releases/staging.jsonl": "y\n"}, "fast"),  # a first history
        ({"Pulumi.dev-2.yaml": "y\n"}, "fast"),  # a new stack's file: validated and previewed
        ({"Pulumi.yaml": "y\n"}, "full"),  # the project file is the program
        ({"Pulumi.prod.yaml": "y\n", "infra/x.py": "y\n"}, "full"),
        ({"Pulumi.prod.yaml": None}, "full"),  # a deleted stack
        ({"releases/prod.jsonl.bak": "y\n"}, "full"),
        ({"Pulumi.Prod.yaml": "y\n"}, "full"),  # not a stack name
        ({"docs/x.md": "y\n"}, "full"),
    ],
)
def test_only_stack_files_and_release_history_take_the_fast_path(
    repo: Path, edits: dict[str, str | None], expected: str
) -> None:
    out, why = decide(repo, edits)
    assert out == f"path={expected}\n"
    assert why.startswith(f"ci path: {expected}: ")


def test_the_reason_names_the_files_that_need_the_full_path(repo: Path) -> None:
    out, why = decide(repo, {"Pulumi.prod.yaml": "y\n", "infra/x.py": "y\n", "README.md": "y\n"})
    assert out == "path=full\n"
    assert why == "ci path: full: changes more than stack files and release history: README.md, infra/x.py\n"


def test_the_diff_starts_at_the_merge_base_so_later_merges_to_main_do_not_count(repo: Path) -> None:
    git(repo, "switch", "-q", "main")
    write(repo, "infra/x.py", "merged meanwhile\n")
    git(repo, "commit", "-qam", "another pull request merged")
    git(repo, "switch", "-q", "pr")
    assert decide(repo, {"Pulumi.prod.yaml": "rollback\n"})[0] == "path=fast\n"


def test_no_change_takes_the_full_path(repo: Path) -> None:
    done = ci_path(repo, "--base", "main")
    assert (done.returncode, done.stdout) == (0, "path=full\n")


@pytest.mark.parametrize("base", ["origin/nope", "--output=/tmp/x", "main~9"])
def test_a_base_that_is_not_a_commit_is_a_usage_error(repo: Path, base: str) -> None:
    done = ci_path(repo, f"--base={base}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == f"ci path: --base: {base!r} is not a commit here (fetch it first: fetch-depth 0)\n"


def test_decide_without_git() -> None:
    assert path.decide([("M", "Pulumi.prod.yaml"), ("A", "releases/prod.jsonl")]).path == path.FAST
    assert path.decide([("R", "Pulumi.prod.yaml")]).path == path.FULL
