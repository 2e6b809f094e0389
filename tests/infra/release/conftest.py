"""Fixtures for the release tool: temp copies of the committed stack files, and a command runner."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from release_promkit import PromServer
from release_promkit import start as start_prometheus
from release_testkit import AUTHOR, REPO, STACKS, Result, Run

from infra.release import cli


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp directory holding copies of the committed Pulumi.yaml and stack files."""
    for name in ("Pulumi.yaml", *(f"Pulumi.{s}.yaml" for s in STACKS)):
        shutil.copy2(REPO / name, tmp_path / name)
    name, email = AUTHOR[:-1].split(" <")
    monkeypatch.setenv("GIT_AUTHOR_NAME", name)
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", email)
    return tmp_path


@pytest.fixture
def run(repo: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``python -m infra release --root <repo> …`` in-process; returns its exit code and output."""

    def runner(*argv: str, deployed: Callable[[str], str | None] | None = None) -> Result:
        capsys.readouterr()
        code = cli.main(["--root", str(repo), *argv], deployed=deployed)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return runner


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromServer]:
    """A real Prometheus (Debian package) on loopback scraping the test exporter; fails if not installed."""
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()
