"""``python -m infra image …``: pinning, refusals with clear messages, mirror and cache-key logic."""

from __future__ import annotations

import json
import shutil
import textwrap
import time
import tomllib
from pathlib import Path

import pytest
from image_testkit import REPO, REPOSITORY, REVISION, TIMESTAMP

from infra.errors import ImageError
from infra.tools.image import buildah, cli, publish, registry_server, rootfs, sbom, signing, wheels
from infra.tools.local.toolchain.build import ensure_built
from tests.infra.supply_chain.signing_kit import cosign_keys, cosign_verify

pytestmark = pytest.mark.timeout(600)


def test_build_with_stack_pushes_and_pins_the_digest(
    built: publish.Result,
    context: Path,
    local_registry: registry_server.Registry,
    base_ref: str,
    storage: buildah.Storage,
    wheelhouse: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    assert storage.root is not None
    code = cli.main([
        "build", "--registry", local_registry.host, "--repository", REPOSITORY, "--tag", "pinned",
        "--stack", "dev", "--root", str(tmp_path), "--context", str(context), "--base-image", base_ref,
        "--timestamp", str(TIMESTAMP), "--revision", REVISION, "--storage-root", str(storage.root),
        "--wheelhouse", str(wheelhouse), "--no-git", "--sbom-dir", str(tmp_path / "sbom"),
    ])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    # Same inputs as `built` (this time from the layer cache): the same digest, and that is pinned.
    assert out.out.strip() == built.reference
    # Its SBOM, named by the digest, where --sbom-dir says; stderr says where.
    sbom_file = sbom.sbom_path(tmp_path / "sbom", REPOSITORY, built.digest)
    assert sbom_file.is_file() and f"SBOM (spdx-json) of {built.digest}: {sbom_file}" in out.err
    stack = (tmp_path / "Pulumi.dev.yaml").read_text()
    assert f"mobius-preview-worker:image: {built.reference}\n" in stack
    [entry] = [json.loads(line) for line in (tmp_path / "releases" / "dev.jsonl").read_text().splitlines()]
    assert (entry["action"], entry["after"]["image"]) == ("pin", built.reference)
    assert entry["reason"] == f"image build of {REVISION}"


@pytest.mark.timeout(1200)  # builds cosign first when it is not cached (about 7 minutes cold)
def test_build_with_a_key_signs_attests_and_pins_into_a_stack_that_requires_it(
    built: publish.Result,
    context: Path,
    local_registry: registry_server.Registry,
    base_ref: str,
    storage: buildah.Storage,
    wheelhouse: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--sign-key``: cosign signs the digest and attests its provenance and SBOM before the pin, so a dev
    stack whose imageSignature names the key takes it (the release gate checks it in the registry)."""
    cosign = ensure_built("cosign")
    keys = cosign_keys(cosign, tmp_path / "keys")
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    stack = tmp_path / "Pulumi.dev.yaml"
    signer = "  mobius-preview-worker:imageSignature:\n    publicKey: |\n"
    signer += textwrap.indent(keys.public_pem, "      ")
    stack.write_text(stack.read_text().replace("config:\n", "config:\n" + signer, 1))
    monkeypatch.setenv(signing.ENV_PASSWORD, keys.password)
    assert storage.root is not None
    code = cli.main([
        "build", "--registry", local_registry.host, "--repository", REPOSITORY, "--tag", "signed",
        "--stack", "dev", "--root", str(tmp_path), "--context", str(context), "--base-image", base_ref,
        "--timestamp", str(TIMESTAMP), "--revision", REVISION, "--storage-root", str(storage.root),
        "--wheelhouse", str(wheelhouse), "--no-git", "--sign-key", str(keys.private),
    ])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.strip() == built.reference
    assert f"signed {built.reference} and attested its provenance (slsaprovenance1)" in out.err
    assert f"{built.reference}: signature verified (the configured public key)" in out.err
    assert keys.password not in out.out + out.err
    assert f"mobius-preview-worker:image: {built.reference}\n" in stack.read_text()
    assert cosign_verify(cosign, built.reference, keys.public_pem, tmp_path, "verify-attestation",
                         "--type", "slsaprovenance1")  # fmt: skip
    # The build's SBOM travels with the digest: attested with the same key.
    assert f"attested {built.reference}'s SBOM (spdxjson)" in out.err
    assert cosign_verify(cosign, built.reference, keys.public_pem, tmp_path, "verify-attestation",
                         "--type", "spdxjson")  # fmt: skip


def test_an_unsigned_build_says_so(built: publish.Result, capsys: pytest.CaptureFixture[str]) -> None:
    assert built.signed is None
    assert signing.unsigned_note(built.reference).startswith(f"NOT SIGNED: {built.reference} was pushed")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--registry", "http://127.0.0.1:5000"], "--registry must be HOST[:PORT] without a scheme"),
        (
            ["--registry", "127.0.0.1:5000", "--repository", "Mobius/Worker"],
            "--repository must be lower-case",
        ),
        (["--registry", "127.0.0.1:5000", "--tag", "no/slash"], "--tag must match"),
    ],
)
def test_bad_names_are_refused_before_building(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["build", "--repository", "mobius/preview-worker", "--revision", "r1", *flags]
    started = time.monotonic()
    assert cli.main(argv) == 1
    assert time.monotonic() - started < 5  # refused up front, not after a build
    assert message in capsys.readouterr().err


def test_a_context_without_dockerfile_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["build", "--registry", "127.0.0.1:5000", "--repository", "x", "--context", str(tmp_path)]
    assert cli.main(argv) == 1
    assert f"image build: no Dockerfile in {tmp_path}" in capsys.readouterr().err


def test_base_push_needs_a_tag(capsys: pytest.CaptureFixture[str], base_image: rootfs.BaseImage) -> None:
    assert cli.main(["base", "--push", "127.0.0.1:5000/mobius/base"]) == 1
    assert "--push must be HOST[:PORT]/REPO:TAG" in capsys.readouterr().err


def test_invalid_source_date_epoch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ImageError, match="SOURCE_DATE_EPOCH must be whole seconds"):
        publish.source_epoch(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert publish.source_epoch(tmp_path) == 1_700_000_000


def test_base_cache_key_covers_every_input() -> None:
    spec = rootfs.BaseSpec(mirror="http://deb.debian.org/debian", arch="amd64")
    assert spec.key() == rootfs.BaseSpec(mirror="http://deb.debian.org/debian", arch="amd64").key()
    others = [
        rootfs.BaseSpec(mirror="http://mirror.example/debian", arch="amd64"),
        rootfs.BaseSpec(mirror="http://deb.debian.org/debian", arch="arm64"),
        rootfs.BaseSpec(mirror="http://deb.debian.org/debian", arch="amd64", packages=("python3",)),
        rootfs.BaseSpec(mirror="http://deb.debian.org/debian", arch="amd64", suite="trixie"),
        rootfs.BaseSpec(
            mirror="http://deb.debian.org/debian", arch="amd64", recipe=rootfs.RECIPE_VERSION + 1
        ),
    ]
    assert len({spec.key(), *(o.key() for o in others)}) == 6


def test_cached_base_is_reused_and_matches_its_digest(base_image: rootfs.BaseImage) -> None:
    started = time.monotonic()
    again = rootfs.ensure_base(log=lambda m: pytest.fail(f"rebuilt the cached base: {m}"))
    assert again == base_image
    assert time.monotonic() - started < 5
    index = json.loads((base_image.layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [base_image.digest]


def test_find_mirror_reads_deb822_and_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert rootfs.find_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://one.example/debian bookworm main\n"
    )
    assert rootfs.find_mirror(tmp_path) == "http://one.example/debian"
    with pytest.raises(ImageError, match="no apt source for Debian trixie"):
        rootfs.find_mirror(tmp_path, suite="trixie")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1:5000", True), ("localhost:5000", True), ("[::1]:5000", True), ("localhost", True),
     ("ghcr.io", False), ("registry.example:443", False), ("10.0.0.1:5000", False)],
)  # fmt: skip
def test_plain_http_only_for_loopback_registries(host: str, loopback: bool) -> None:
    assert registry_server.is_loopback(host) is loopback
    assert buildah.tls_flag(f"{host}/x/y:z") == f"--tls-verify={'false' if loopback else 'true'}"


def test_registry_on_a_taken_port_is_refused(
    local_registry: registry_server.Registry, tmp_path: Path
) -> None:
    port = int(local_registry.host.rsplit(":", 1)[1])
    in_use = rf"registry on 127\.0\.0\.1:{port}: the port is in use"
    with pytest.raises(ImageError, match=in_use), registry_server.serve(tmp_path / "second", port=port):
        pass


def test_build_args_carry_version_revision_base_and_the_github_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "mobius/preview-worker")
    req = publish.Request(
        context=REPO, registry="r", repository="x", base_image="b@sha256:1", wheelhouse=tmp_path
    )
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert publish.build_args(req, "abc") == {
        "VERSION": version,
        "REVISION": "abc",
        "BASE_IMAGE": "b@sha256:1",
        "SOURCE": "https://github.com/mobius/preview-worker",
        "PIP_FIND_LINKS": publish.WHEELHOUSE_MOUNT,
        "PIP_NO_INDEX": "1",
    }
    monkeypatch.delenv("GITHUB_REPOSITORY")
    assert "SOURCE" not in publish.build_args(
        publish.Request(context=REPO, registry="r", repository="x"), "abc"
    )


def test_wheelhouse_inputs_are_read_from_the_dockerfile(tmp_path: Path) -> None:
    assert wheels.dockerfile_arg(REPO, "PRUNE").split() == [
        "pulumi", "pulumi-kubernetes", "pulumi-policy", "hvac", "ruamel-yaml",
    ]  # fmt: skip
    assert wheels.dockerfile_arg(REPO, "UV_VERSION").count(".") == 2
    (tmp_path / "Dockerfile").write_text("FROM scratch\nARG OTHER=1\n")
    with pytest.raises(ImageError, match="the Dockerfile has no `ARG UV_VERSION=…` default"):
        wheels.dockerfile_arg(tmp_path, "UV_VERSION")


def test_wheelhouse_holds_every_locked_runtime_wheel(wheelhouse: Path) -> None:
    names = {p.name.split("-")[0].lower().replace("_", "-") for p in wheelhouse.glob("*.whl")}
    assert {"bullmq", "redis", "hiredis", "pillow", "pypdfium2", "uvloop", "async-timeout", "uv"} <= names
    assert not names & {"pulumi", "pulumi-kubernetes", "pulumi-policy", "hvac", "ruamel-yaml", "grpcio"}
