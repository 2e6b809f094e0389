"""Helpers shared by the release tool's tests (imported by conftest and the test modules)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
STACKS = ("dev", "staging", "prod")
AUTHOR = "Rel Tester <rel@example.test>"


def digest(char: str) -> str:
    """A well-formed image reference whose digest is 64 times ``char``."""
    return f"ghcr.io/mobius/preview-worker@sha256:{char * 64}"


@dataclass
class Result:
    """One command run: exit code and captured output."""

    code: int
    out: str
    err: str


Run = Callable[..., Result]


def snapshot(repo: Path) -> dict[str, bytes]:
    """Every stack and history file's bytes, to prove a refused command wrote nothing."""
    files = sorted(repo.glob("Pulumi.*.yaml")) + sorted((repo / "releases").glob("*.jsonl"))
    return {p.name: p.read_bytes() for p in files}


def git(repo: Path, *args: str) -> str:
    """Run real git in ``repo``; its stdout."""
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60
    ).stdout


def init_repo(work: Path, origin: Path) -> None:
    """``work`` becomes a git work tree on ``main`` with one commit, pushed to a bare ``origin``."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True, timeout=60)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "init")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "-q", "origin", "main")


def origin_of(repo: Path) -> Path:
    """The bare repository the ``repo`` fixture pushes to."""
    return repo.parent / "origin.git"


def release_branches(repo: Path) -> list[str]:
    """The clone's ``release/*`` branches."""
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/release/").split()


def merge(repo: Path, branch: str) -> None:
    """The release's pull request merged: origin's main fast-forwards to it, and ``repo`` (on main) pulls."""
    git(repo, "push", "-q", "origin", f"{branch}:main")
    git(repo, "pull", "-q", "--ff-only", "origin", "main")
