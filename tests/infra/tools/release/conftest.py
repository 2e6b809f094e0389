"""Fixtures for the release tool: temp copies of the committed stack files, and a command runner."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from release_promkit import PromServer
from release_promkit import start as start_prometheus
from release_testkit import AUTHOR, REPO, STACKS, Result, Run, init_repo, merge, release_branches

from infra.tools.release import cli


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git work tree on ``main`` holding copies of the committed Pulumi.yaml and stack files.

    Its ``origin`` is a bare repository on disk (``origin_of(repo)``), so pushes are real.
    """
    name, email = AUTHOR[:-1].split(" <")
    for var, value in (("NAME", name), ("EMAIL", email)):
        monkeypatch.setenv(f"GIT_AUTHOR_{var}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{var}", value)
    work = tmp_path / "work"
    work.mkdir()
    for file in ("Pulumi.yaml", *(f"Pulumi.{s}.yaml" for s in STACKS)):
        shutil.copy2(REPO / file, work / file)
    init_repo(work, tmp_path / "origin.git")
    return work


@pytest.fixture
def run(repo: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``python -m infra release --root <repo> …`` in-process; returns its exit code and output.

    A release it cuts is then merged (its branch becomes origin's main, and ``repo`` pulls it),
    as the team does before the next release of a stack; ``merged=False`` leaves it open.
    """

    def runner(
        *argv: str, deployed: Callable[[str], str | None] | None = None, merged: bool = True
    ) -> Result:
        capsys.readouterr()
        before = release_branches(repo) if (repo / ".git").exists() else []
        code = cli.main(["--root", str(repo), *argv], deployed=deployed)
        captured = capsys.readouterr()
        new = [b for b in release_branches(repo) if b not in before] if (repo / ".git").exists() else []
        if merged and code == 0 and new:
            (branch,) = new
            merge(repo, branch)
        return Result(code, captured.out, captured.err)

    return runner


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromServer]:
    """A real Prometheus (Debian package) on loopback scraping the test exporter; fails if not installed."""
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()
