"""End-to-end fixtures: the built toolchain and one local cluster per session.

These tests FAIL (never skip) when the toolchain is missing: `./dev test` builds
it first (deps/setup.d/10-toolchain.sh). The session's cluster runs from a
temporary state folder and is stopped, with everything it started, at the end.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_kit import ScratchProject, drop_stack, engine_environ, run

from infra.tools.image.registry_server import Registry, serve
from infra.tools.local.cluster import control_plane, kube, shell_env
from infra.tools.local.layout import StateDir
from infra.tools.local.project import project_copy
from infra.tools.local.realnode import netns, node
from infra.tools.local.realnode.layout import NETNS, NODE_NAME
from infra.tools.local.toolchain import build
from tests.servers import (  # noqa: F401 (registers the session's `redis_server` and `vault_server`)
    RedisServer,
    shared_redis_server,
    shared_vault_server,
)
from tests.worker.store_kit import MinioServer, minio  # noqa: F401 (`minio`: the session's MinIO)

FIRST = "RUN_BEFORE_SESSION_CLUSTER"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything: the check below sees every test
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test here `e2e`; run modules with ``RUN_BEFORE_SESSION_CLUSTER`` first.

    Those start and stop their own cluster on the same loopback ports, so they
    must finish before the session's cluster starts. An ``e2e`` test outside this folder is
    refused: ``./dev test``'s end-to-end half collects only this folder, and the other half
    deselects ``e2e``, so such a test would run in neither.
    """
    here = Path(__file__).parent
    elsewhere = [item.nodeid for item in items if item.get_closest_marker("e2e") is not None
                 and not Path(str(item.fspath)).is_relative_to(here)]  # fmt: skip
    if elsewhere:
        raise pytest.UsageError(f"e2e tests must live under {here} (./dev test runs them from there): "
                                f"{', '.join(elsewhere)}")  # fmt: skip
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


@pytest.fixture(scope="session")
def e2e_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A loopback registry (plain HTTP, a free port) for the images the e2e tests build or push."""
    with serve(tmp_path_factory.mktemp("e2e-registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def worker_image_inputs(e2e_registry: Registry) -> list[str]:
    """``python -m infra image build``'s arguments for the worker image in ``e2e_registry``: the
    cached base pushed there and the locked wheels, as the demo builds it (no SBOM: loopback only)."""
    infra = [sys.executable, "-m", "infra", "image"]
    environ = dict(os.environ)
    base = run([*infra, "base", "--push", f"{e2e_registry.host}/mobius/base:bookworm"], environ, timeout=900)
    wheels = run([*infra, "wheels"], environ, timeout=900)
    last = lambda out: out.strip().splitlines()[-1]  # noqa: E731 (the CLIs print their result last)
    return ["--registry", e2e_registry.host, "--repository", "mobius/preview-worker", "--no-sbom",
            "--base-image", last(base), "--wheelhouse", last(wheels)]  # fmt: skip


@pytest.fixture(scope="session")
def worker_image(worker_image_inputs: list[str]) -> str:
    """The worker image built from this work tree and pushed to ``e2e_registry``, pinned by digest."""
    built = run([sys.executable, "-m", "infra", "image", "build", *worker_image_inputs], dict(os.environ),
                timeout=900)  # fmt: skip
    return built.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def real_node(
    local_cluster: control_plane.Cluster,
    e2e_registry: Registry,
    redis_server: RedisServer,
    minio: MinioServer,  # noqa: F811 (the fixture imported above, by its name)
) -> Iterator[node.RealNode]:
    """The real node (issue 31) on the session's cluster, started by the first test that needs it.

    It pulls from ``e2e_registry``; pods reach the registry, the session's Redis and its MinIO on
    the host at ``HOST_ADDRESS`` (``host_ports`` in that order). At the end of the session it is
    stopped and checked gone: no process, mount, runtime folder, namespace or Node of it is left.
    """
    ports = (int(e2e_registry.host.rsplit(":", 1)[1]), redis_server.port, minio.port)
    lines: list[str] = []
    try:
        started = node.up(local_cluster, registries=(e2e_registry.host,), host_ports=ports, log=lines.append)
    except BaseException:
        node.down(local_cluster, log=lambda _: None)
        raise
    print("\n".join(lines))
    yield started
    node.down(local_cluster, log=lambda _: None)
    assert started.status() == dict.fromkeys(started.status())
    assert not netns.exists(NETNS)
    mounts = [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()]
    assert not [m for m in mounts if m.startswith(tuple(str(f) for f in started.files.all()))]
    assert not started.files.run.exists()
    nodes = kube.kubectl(local_cluster.state.kubeconfig, "get", "nodes", "-o", "name")
    assert f"node/{NODE_NAME}" not in nodes


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
    """A scratch copy of the project; at teardown every stack it made is dropped (e2e_kit.drop_stack)."""
    folder = project_copy(tmp_path / "project")
    yield folder
    for stack in json.loads(run(["pulumi", "stack", "ls", "--json"], engine_env, cwd=folder)):
        drop_stack(folder, engine_env, stack["name"])
