"""Fixtures for the deployment tests: the real program run under Pulumi's mocks, once per stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.tools.snapshot.harness import ROOT, ProgramRun, run_program

STACKS = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in ROOT.glob("Pulumi.*.yaml"))


@pytest.fixture(scope="session")
def stack_runs() -> dict[str, ProgramRun]:
    """Every committed stack file, run through ``__main__.py`` under mocks (cached for the session)."""
    return {stack: run_program(stack) for stack in STACKS}


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (where Pulumi.yaml lives)."""
    return ROOT
