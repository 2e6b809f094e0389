"""A throwaway local cluster, Pulumi file backend and project copy, for the suites that run the engine.

Shared by :mod:`bench.engine_suite` and :mod:`bench.rollback_suite`: a state folder of their own
(so nothing of a person's ``python -m infra local`` cluster is touched), stopped at the end.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.tools.local.cluster import control_plane, shell_env
from infra.tools.local.layout import StateDir
from infra.tools.local.project import project_copy


@dataclass(frozen=True)
class Workspace:
    """Where a suite runs: its temporary root, the engine's environment and the project copy."""

    root: Path
    environ: dict[str, str]
    project: Path


@contextmanager
def local_engine(prefix: str) -> Iterator[Workspace]:
    """Start a local cluster with a file backend and a project copy of their own; stop it at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = Path(tmp)
        state = StateDir(root / "cluster")
        try:
            control_plane.up(state, log=lambda _: None)
            (root / "backend").mkdir()
            environ = {**os.environ, **shell_env.variables(state, backend=root / "backend")}
            yield Workspace(root, environ, project_copy(root / "project"))
        finally:
            control_plane.down(state, log=lambda _: None)
