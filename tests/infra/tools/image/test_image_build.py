"""The Dockerfile built with buildah, pushed to a real registry: digests, config and layer contents."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib

import pytest
from image_testkit import (
    CODE_CHANGE,
    REPO,
    REPOSITORY,
    REVISION,
    TIMESTAMP,
    Entry,
    catalog,
    image_config,
    layer_entries,
    layer_file,
    manifest,
    raw_manifest,
)

from infra.tools.image import buildah, publish, registry_server
from worker import constants as c

# The first build of a machine also builds syft for the SBOM (about 6 minutes cold, once).
pytestmark = pytest.mark.timeout(1200)
COMPILERS = re.compile(r"^usr/(local/)?bin/(gcc|cc|c\+\+|g\+\+|clang|make|ld)(-[\d.]+)?$")


def _layers(reg: registry_server.Registry, result: publish.Result) -> list[str]:
    return [layer["digest"] for layer in manifest(reg.host, REPOSITORY, result.digest)["layers"]]


def _ours(reg: registry_server.Registry, result: publish.Result) -> dict[str, list[Entry]]:
    """The layers the Dockerfile adds on top of the base, by digest."""
    return {d: layer_entries(reg.host, REPOSITORY, d) for d in _layers(reg, result)[1:]}


def test_pushed_digest_is_the_manifest_the_registry_serves(
    built: publish.Result, local_registry: registry_server.Registry
) -> None:
    body = raw_manifest(local_registry.host, REPOSITORY, built.digest)
    assert built.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert built.reference == f"{local_registry.host}/{REPOSITORY}@{built.digest}"
    assert buildah.inspect_digest(f"{local_registry.host}/{REPOSITORY}:a") == built.digest
    assert REPOSITORY in catalog(local_registry.host)


def test_same_inputs_give_the_same_digest(built: publish.Result, rebuilt: publish.Result) -> None:
    # `rebuilt` ran every step again (--no-cache) from a copy of the context in another directory.
    assert rebuilt.digest == built.digest
    assert rebuilt.tagged != built.tagged


def test_a_code_change_gives_a_new_digest_and_only_the_app_layer_changes(
    built: publish.Result, changed: publish.Result, local_registry: registry_server.Registry
) -> None:
    assert changed.digest != built.digest
    before, after = _layers(local_registry, built), _layers(local_registry, changed)
    differing = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
    assert len(differing) == 1
    names = {e.name for e in layer_entries(local_registry.host, REPOSITORY, after[differing[0]])}
    assert "app/worker/__init__.py" in names
    code = layer_file(local_registry.host, REPOSITORY, after[differing[0]], "app/worker/__init__.py")
    assert code.endswith(CODE_CHANGE.encode())


def test_config_runs_the_worker_as_a_fixed_non_root_user(
    built: publish.Result, local_registry: registry_server.Registry
) -> None:
    config = image_config(local_registry.host, REPOSITORY, built.digest)
    run = config["config"]
    assert run["User"] == "10001:10001"
    assert run["Entrypoint"] == ["python", "-m", "worker"]
    assert run["Cmd"] == ["run"]
    assert run["WorkingDir"] == "/app"
    assert set(run["ExposedPorts"]) == {f"{c.API_PORT}/tcp", f"{c.METRICS_PORT}/tcp"}
    env = dict(item.split("=", 1) for item in run["Env"])
    assert env[c.ENV_DATA_DIR] == "/data"
    assert env["PATH"].startswith("/opt/venv/bin:")
    # Every env var the image sets is a Python/OS one or a worker name from worker/constants.py.
    worker_names = {v for k, v in vars(c).items() if k.startswith("ENV_")}
    assert {k for k in env if k not in {"PATH", "LANG"} and not k.startswith("PYTHON")} <= worker_names
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert {h["created"] for h in config["history"][1:]} == {"2023-11-14T22:13:20Z"}


def test_oci_labels_name_source_revision_and_version(
    built: publish.Result, local_registry: registry_server.Registry
) -> None:
    labels = image_config(local_registry.host, REPOSITORY, built.digest)["config"]["Labels"]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.revision"] == REVISION
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.source"].startswith("https://github.com/")


def test_another_revision_is_labelled_with_it_even_from_the_layer_cache(
    built: publish.Result, relabelled: publish.Result, local_registry: registry_server.Registry
) -> None:
    # buildah 1.28 reused the cached LABEL step: the new image carried the old commit's revision.
    first, again = (image_config(local_registry.host, REPOSITORY, r.digest) for r in (built, relabelled))
    assert again["config"]["Labels"]["org.opencontainers.image.revision"] == "f" * 40
    assert first["config"]["Labels"]["org.opencontainers.image.revision"] == REVISION
    assert relabelled.digest != built.digest
    assert again["rootfs"]["diff_ids"] == first["rootfs"]["diff_ids"]  # the same layers, only the label


def test_layers_hold_only_runtime_files_with_fixed_times_and_owners(
    built: publish.Result, local_registry: registry_server.Registry
) -> None:
    ours = _ours(local_registry, built)
    entries = [e for layer in ours.values() for e in layer]
    names = {e.name.rstrip("/") for e in entries}
    # Only the worker's runtime files under /app: its packages and the schema, no examples or tests.
    app = {n for n in names if n.startswith("app/")}
    assert app and all(n.startswith(("app/worker", "app/mobius_preview_client", "app/schemas")) for n in app)
    assert "app/mobius_preview_client/names.py" in names  # the worker imports the client's modules
    assert f"app/{c.SCHEMA_FILE}" in names
    assert not any(n.startswith(("app/schemas/examples", "app/tests")) for n in names)
    # No bytecode (mtimes in .pyc headers would break reproducibility), no pip in the runtime venv.
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    assert not [n for n in names if n.startswith("opt/venv/bin/pip")]
    assert "opt/venv/bin/python" in names
    # Every file the build adds carries the build timestamp; root owns everything except /data.
    assert {e.mtime for e in entries} == {TIMESTAMP}
    assert {(e.uid, e.gid) for e in entries if not e.name.startswith("data")} == {(0, 0)}
    data = [e for e in entries if e.name.rstrip("/") == "data"]
    assert [(e.uid, e.gid, e.mode & 0o777) for e in data] == [(10001, 10001, 0o755)]
    assert not [e.name for e in entries if e.kind != "symlink" and e.mode & 0o022]


def test_runtime_has_no_compilers_and_knows_the_worker_user(
    built: publish.Result, local_registry: registry_server.Registry
) -> None:
    layers = _layers(local_registry, built)
    every = [e.name for d in layers for e in layer_entries(local_registry.host, REPOSITORY, d)]
    assert not [n for n in every if COMPILERS.match(n)]
    ours = _ours(local_registry, built)
    passwd_layer = next(d for d, es in ours.items() if any(e.name == "etc/passwd" for e in es))
    passwd = layer_file(local_registry.host, REPOSITORY, passwd_layer, "etc/passwd").decode()
    assert "preview:x:10001:10001:preview worker:/nonexistent:/usr/sbin/nologin" in passwd.splitlines()


def test_manifest_names_its_base_by_digest(
    built: publish.Result, local_registry: registry_server.Registry, base_ref: str
) -> None:
    annotations = manifest(local_registry.host, REPOSITORY, built.digest)["annotations"]
    assert annotations["org.opencontainers.image.base.name"] == base_ref
    assert json.dumps(annotations).count("@sha256:") == 1
