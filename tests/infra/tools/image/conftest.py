"""Session fixtures for the image suite: the cached base, a loopback registry, and three builds.

The builds are slow (a minute each), so each is made once per session and shared:
``built`` (layer cache on), ``rebuilt`` (same inputs from another directory, no cache)
and ``changed`` (one worker file edited). The tools are required: a missing buildah,
skopeo, docker-registry or debootstrap FAILS the suite, never skips it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from image_testkit import CODE_CHANGE, REPOSITORY, REVISION, TIMESTAMP, snapshot_context

from infra.tools.image import buildah, publish, rootfs, wheels
from infra.tools.image.registry_server import Registry, serve
from infra.tools.image.tools import remove_tree


def _log(message: str) -> None:
    print(message)


@pytest.fixture(scope="session")
def image_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for tool in ("buildah", "skopeo", "docker-registry", "debootstrap"):
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin") is None:
            pytest.fail(f"{tool} is not installed (deps/apt-image.txt); the image suite needs it")
    return tmp_path_factory.mktemp("image")


@pytest.fixture(scope="session")
def base_image(image_tmp: Path) -> rootfs.BaseImage:
    """The debootstrap base (built by deps/setup.d/30-image.sh; built here if missing)."""
    return rootfs.ensure_base(log=_log)


@pytest.fixture(scope="session")
def local_registry(image_tmp: Path) -> Iterator[Registry]:
    with serve(image_tmp / "registry") as reg:
        yield reg


@pytest.fixture(scope="session")
def base_ref(local_registry: Registry, base_image: rootfs.BaseImage) -> str:
    """The base pushed to the loopback registry, as a digest-pinned BASE_IMAGE."""
    digest = buildah.copy(base_image.oci_ref, f"{local_registry.host}/mobius/base:bookworm")
    assert digest == base_image.digest  # skopeo copies the cached layout unchanged
    return f"{local_registry.host}/mobius/base@{digest}"


@pytest.fixture(scope="session")
def storage(image_tmp: Path) -> Iterator[buildah.Storage]:
    """Private buildah/podman storage, removed (unmounting first) at the end of the session.

    On tmpfs when there is room: the builds write (and the teardown deletes) about a
    gigabyte in 35,000 files, which takes a minute on this machine's disk and seconds in
    memory. The path is short on purpose: podman refuses a runroot over 50 characters.
    """
    shm = Path("/dev/shm")
    on_tmpfs = shm.is_dir() and shutil.disk_usage(shm).free > 4 * 2**30
    root = Path(tempfile.mkdtemp(prefix="mpw-image-", dir=shm if on_tmpfs else None))
    yield buildah.Storage(root=root)
    remove_tree(root)


@pytest.fixture(scope="session")
def wheelhouse(context: Path) -> Path:
    """The locked wheels (downloaded by deps/setup.d/30-image.sh): the builds need no network."""
    return wheels.ensure_wheelhouse(context, log=_log)


Publish = Callable[..., publish.Result]


@pytest.fixture(scope="session")
def context(image_tmp: Path) -> Path:
    return snapshot_context(image_tmp / "context-a")


@pytest.fixture(scope="session")
def publish_from(
    context: Path,
    image_tmp: Path,
    local_registry: Registry,
    base_ref: str,
    storage: buildah.Storage,
    wheelhouse: Path,
) -> Publish:
    """Build and push the build context (or a copy of it, ``copy="context-b"``) with the suite's
    fixed registry, base, revision and timestamp; ``edit`` changes the copy before the build."""

    def build(
        tag: str,
        *,
        copy: str | None = None,
        no_cache: bool = False,
        edit: Callable[[Path], None] | None = None,
        revision: str = REVISION,
    ) -> publish.Result:
        source = context
        if copy is not None:
            source = image_tmp / copy
            shutil.copytree(context, source)
        if edit is not None:
            edit(source)
        request = publish.Request(
            context=source,
            registry=local_registry.host,
            repository=REPOSITORY,
            tag=tag,
            base_image=base_ref,
            timestamp=TIMESTAMP,
            revision=revision,
            storage=storage,
            no_cache=no_cache,
            wheelhouse=wheelhouse,
        )
        return publish.publish(request, _log)

    return build


@pytest.fixture(scope="session")
def built(publish_from: Publish) -> publish.Result:
    return publish_from("a")


@pytest.fixture(scope="session")
def rebuilt(built: publish.Result, publish_from: Publish) -> publish.Result:
    """The same inputs again, from another directory, every step re-run (no layer cache)."""
    return publish_from("b", copy="context-b", no_cache=True)


def _change_one_worker_file(context: Path) -> None:
    with (context / "worker" / "__init__.py").open("a") as f:
        f.write(CODE_CHANGE)


@pytest.fixture(scope="session")
def changed(built: publish.Result, publish_from: Publish) -> publish.Result:
    """The same inputs but one line appended to ``worker/__init__.py``."""
    return publish_from("c", copy="context-c", edit=_change_one_worker_file)


@pytest.fixture(scope="session")
def relabelled(built: publish.Result, publish_from: Publish) -> publish.Result:
    """The same inputs under another revision (a docs-only commit), with the layer cache on."""
    return publish_from("d", revision="f" * 40)
