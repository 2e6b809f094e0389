"""End-to-end fixtures: the built toolchain and one local cluster per session.

These tests FAIL (never skip) when the toolchain is missing: `./dev test` builds
it first (deps/setup.d/10-toolchain.sh). The session's cluster runs from a
temporary state folder and is stopped, with everything it started, at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_kit import ScratchProject, engine_environ

from infra.tools.local.cluster import control_plane, shell_env
from infra.tools.local.layout import StateDir
from infra.tools.local.project import project_copy
from infra.tools.local.toolchain import build

FIRST = "RUN_BEFORE_SESSION_CLUSTER"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test here `e2e`; run modules with ``RUN_BEFORE_SESSION_CLUSTER`` first.

    Those start and stop their own cluster on the same loopback ports, so they
    must finish before the session's cluster starts.
    """
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.e2e)
    items.sort(key=lambda item: not getattr(getattr(item, "module", None), FIRST, False))


@pytest.fixture(scope="session")
def built_toolchain() -> None:
    """Fail (not skip) when a pinned tool is not built yet."""
    missing = build.missing()
    if missing:
        pytest.fail(
            f"toolchain not built: {', '.join(missing)} missing under {build.bin_dir().parent}; "
            "run `python -m infra local bootstrap` (./dev test does it first)"
        )


@pytest.fixture(scope="session")
def local_state(tmp_path_factory: pytest.TempPathFactory) -> StateDir:
    """A state folder of this session only."""
    return StateDir(tmp_path_factory.mktemp("local-cluster"))


@pytest.fixture(scope="session")
def local_cluster(built_toolchain: None, local_state: StateDir) -> Iterator[control_plane.Cluster]:
    """A running local cluster; stopped (and checked stopped) at the end of the session."""
    try:
        running = control_plane.up(local_state, log=lambda _: None)
    except BaseException:
        control_plane.down(local_state, log=lambda _: None)  # leave nothing behind from a half start
        raise
    yield running
    control_plane.down(local_state, log=lambda _: None)
    assert running.status() == dict.fromkeys(running.status())


@pytest.fixture(scope="session")
def local_env(local_state: StateDir) -> dict[str, str]:
    """os.environ plus `python -m infra local env`'s variables for this session's cluster."""
    return {**os.environ, **shell_env.variables(local_state)}


@pytest.fixture
def engine_env(local_cluster: control_plane.Cluster, tmp_path: Path) -> dict[str, str]:
    """local_env with a Pulumi file backend of this test only, so stacks never leak between tests."""
    return engine_environ(local_cluster.state, tmp_path / "backend")


@pytest.fixture(scope="session")
def scratch_project(
    local_cluster: control_plane.Cluster, tmp_path_factory: pytest.TempPathFactory
) -> ScratchProject:
    """Make a project copy plus an engine environment with a file backend of its own, by name.

    For module-scoped fixtures whose tests share one set of stacks.
    """

    def make(name: str) -> tuple[Path, dict[str, str]]:
        root = tmp_path_factory.mktemp(name)
        return project_copy(root / "project"), engine_environ(local_cluster.state, root / "backend")

    return make


@pytest.fixture
def project(engine_env: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    """A scratch copy of the project; at teardown every stack it made is destroyed (best effort)."""
    folder = project_copy(tmp_path / "project")
    yield folder
    listed = subprocess.run(
        ["pulumi", "stack", "ls", "--json"], cwd=folder, env=engine_env, capture_output=True, text=True
    )
    for stack in json.loads(listed.stdout or "[]"):
        subprocess.run(
            ["pulumi", "destroy", "--yes", "--non-interactive", "--stack", stack["name"]],
            cwd=folder, env=engine_env, capture_output=True, timeout=600,
        )  # fmt: skip
