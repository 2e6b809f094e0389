"""The signature gate of ``release pin``, ``canary`` and ``promote``: a stack whose ``imageSignature``
names a key takes only images that key signed, checked in a real loopback registry before anything
is written; a stack without a signer is not checked."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from release_testkit import Run, git, release_branches, snapshot

from infra.config.model import load_stack_file
from infra.tools.image.registry_server import Registry, serve
from tests.infra.supply_chain.signing_kit import Key, push_image, sign_image

REPOSITORY = "mobius/preview-worker"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with serve(tmp_path_factory.mktemp("release-registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Key, Key]:
    folder = tmp_path_factory.mktemp("keys")
    return Key.make(folder, "ours"), Key.make(folder, "theirs")


@pytest.fixture
def prod_signed(repo: Path, keys: tuple[Key, Key]) -> Path:
    """``repo`` with prod naming our key as its signer, committed and pushed (releases cut from origin)."""
    path = repo / "Pulumi.prod.yaml"
    block = "  mobius-preview-worker:imageSignature:\n    publicKey: |\n"
    block += textwrap.indent(keys[0].public_pem, "      ")
    path.write_text(path.read_text().replace("config:\n", "config:\n" + block, 1))
    git(repo, "commit", "-qam", "prod: images must be signed")
    git(repo, "push", "-q", "origin", "main")
    return repo


def image(registry: Registry, name: str, signer: Key | None = None) -> str:
    """A new image in the registry, signed by ``signer`` (unsigned when None)."""
    digest = push_image(registry.host, REPOSITORY, name, name.encode())
    if signer is not None:
        sign_image(registry.host, REPOSITORY, digest, signer)
    return f"{registry.host}/{REPOSITORY}@{digest}"


def refused(run: Run, repo: Path, *argv: str) -> str:
    """Run a release that must be refused with nothing written and no branch cut; its error."""
    before, branches = snapshot(repo), release_branches(repo)
    result = run(*argv)
    assert result.code == 1, result.out + result.err
    assert (
        "Pulumi.prod.yaml requires images signed by its imageSignature signer; nothing written" in result.err
    )
    assert snapshot(repo) == before and release_branches(repo) == branches
    return result.err


def test_pin_takes_an_image_the_configured_key_signed(
    prod_signed: Path, run: Run, registry: Registry, keys: tuple[Key, Key]
) -> None:
    signed = image(registry, "pin-good", keys[0])
    result = run("pin", "--stack", "prod", "--image", signed)
    assert result.code == 0, result.err
    assert f"{signed}: signature verified (the configured public key)" in result.out
    assert load_stack_file(prod_signed / "Pulumi.prod.yaml").image == signed


def test_pin_refuses_an_unsigned_digest_and_another_keys_signature(
    prod_signed: Path, run: Run, registry: Registry, keys: tuple[Key, Key]
) -> None:
    unsigned = image(registry, "pin-unsigned")
    err = refused(run, prod_signed, "pin", "--stack", "prod", "--image", unsigned)
    assert f"{unsigned} is not signed: {registry.host}/{REPOSITORY} has no sha256-" in err
    theirs = image(registry, "pin-theirs", keys[1])
    err = refused(run, prod_signed, "pin", "--stack", "prod", "--image", theirs)
    assert f"{theirs} has no valid signature by the configured key: signature 1: not signed by the" in err
    err = refused(run, prod_signed, "canary", "--stack", "prod", "--image", theirs, "--weight", "10")
    assert "not signed by the configured key" in err


def test_promote_checks_the_target_stacks_signer(
    prod_signed: Path, run: Run, registry: Registry, keys: tuple[Key, Key]
) -> None:
    # staging names no signer: an unsigned image pins there, and is refused on its way to prod.
    unsigned = image(registry, "promote-unsigned")
    assert run("pin", "--stack", "staging", "--image", unsigned).code == 0
    err = refused(
        run, prod_signed, "promote", "--from", "staging", "--to", "prod", "--force", "--reason", "x"
    )
    assert f"{unsigned} is not signed" in err
    signed = image(registry, "promote-signed", keys[0])
    assert run("pin", "--stack", "staging", "--image", signed).code == 0
    result = run("promote", "--from", "staging", "--to", "prod", deployed=lambda _stack: signed)
    assert result.code == 0, result.err
    assert load_stack_file(prod_signed / "Pulumi.prod.yaml").image == signed


def test_a_stack_without_a_signer_reads_no_registry(repo: Path, run: Run) -> None:
    # Nothing listens there: a lookup would fail the pin.
    assert run("pin", "--stack", "prod", "--image", "127.0.0.1:9/m/w@sha256:" + "d" * 64).code == 0
