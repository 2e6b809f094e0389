"""A throwaway local cluster, Pulumi file backend and project copy, for the suites that run the engine.

Shared by :mod:`bench.engine_suite`, :mod:`bench.rollback_suite` and :mod:`bench.scaling_suite`:
a state folder of their own (so nothing of a person's ``python -m infra local`` cluster is
touched), stopped at the end; or, with ``--cluster DIR``, the running cluster of that state
folder, left running (the smoke test passes the end-to-end session's own).
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
    """Where a suite runs: its temporary root, the engine's environment, the project copy and the
    local cluster the environment points at."""

    root: Path
    environ: dict[str, str]
    project: Path
    cluster: control_plane.Cluster


def running_cluster(state_root: Path) -> control_plane.Cluster | None:
    """The local cluster whose state folder is ``state_root``, if every process of it runs; else None."""
    found = control_plane.Cluster(StateDir(state_root))
    return found if all(pid is not None for pid in found.status().values()) else None


@contextmanager
def _cluster(root: Path, shared: Path | None = None) -> Iterator[control_plane.Cluster]:
    """The running cluster of state folder ``shared`` (left running), or one started under ``root``
    and stopped at the end."""
    if shared is not None:
        found = running_cluster(shared)
        if found is None:
            raise RuntimeError(f"no running local cluster in {shared}")
        yield found
        return
    state = StateDir(root / "cluster")
    try:
        yield control_plane.up(state, log=lambda _: None)
    finally:
        control_plane.down(state, log=lambda _: None)


@contextmanager
def local_engine(prefix: str, shared: Path | None = None) -> Iterator[Workspace]:
    """A local cluster (:func:`_cluster`) with a file backend and a project copy of their own."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = Path(tmp)
        with _cluster(root, shared) as running:
            (root / "backend").mkdir()
            environ = {**os.environ, **shell_env.variables(running.state, backend=root / "backend")}
            yield Workspace(root, environ, project_copy(root / "project"), running)
