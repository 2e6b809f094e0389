"""The policy pack's signature rules on real registry data: the program's objects for a stack whose
config (``PULUMI_CONFIG``, as the engine hands it to the pack) names a signer, through the
pulumi-policy objects the engine calls. ``tests/e2e/test_engine_guards.py`` runs them in the engine."""

from __future__ import annotations

import json

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.config.base_model import CONFIG_NAMESPACE
from infra.tools.image.registry_server import Registry
from infra.tools.snapshot.harness import run_program
from policy.pack import POLICIES
from tests.infra.supply_chain.signing_kit import Key, push_image, sign_image

BY_NAME = {p.name: p for p in POLICIES}
OPTS = PolicyResourceOptions(False, [], False, [], PolicyCustomTimeouts(0, 0, 0), [])
REPO = "mobius/policy-checked"


def stack_policy(
    name: str, stack: str, image: str, signer: object | None, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """What policy ``name`` reports for ``stack``'s objects with ``image`` pinned (stable and canary)
    when the stack config names ``signer``."""
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)  # the program under mocks reads it too
    canary = {"weight": 10, "image": image}
    objects = run_program(stack, overrides={"image": image, "canary": canary}).objects()
    configure(monkeypatch, signer)
    policy = BY_NAME[name]
    assert isinstance(policy, StackValidationPolicy)
    resources = [
        PolicyResource(
            f"kubernetes:x:{o['kind']}", o, "urn:x", o["metadata"]["name"], OPTS, None, None, [], {}
        )
        for o in objects
    ]
    found: list[str] = []
    policy.validate(StackValidationArgs(resources, None), lambda message, urn=None: found.append(message))
    return found


def configure(monkeypatch: pytest.MonkeyPatch, signer: object | None) -> None:
    """The stack config the engine passes the pack (``PULUMI_CONFIG``: structured values as JSON)."""
    config = {} if signer is None else {f"{CONFIG_NAMESPACE}:imageSignature": json.dumps(signer)}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(config))


def image(registry: Registry, name: str, signer: Key | None) -> str:
    digest = push_image(registry.host, REPO, name, name.encode())
    if signer is not None:
        sign_image(registry.host, REPO, digest, signer)
    return f"{registry.host}/{REPO}@{digest}"


def test_images_signed_passes_signed_and_refuses_unsigned_or_other_signers(
    registry: Registry, key: Key, other_key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = {"publicKey": key.public_pem}
    assert stack_policy("images-signed", "dev", image(registry, "good", key), ours, monkeypatch) == []
    unsigned = image(registry, "unsigned", None)
    assert stack_policy("images-signed", "dev", unsigned, ours, monkeypatch) == [
        f"image {unsigned}: refused: {unsigned} is not signed: {registry.host}/{REPO} has no "
        f"sha256-{unsigned.split(':')[-1]}.sig"
    ]
    theirs = image(registry, "theirs", other_key)
    [problem] = stack_policy("images-signed", "dev", theirs, ours, monkeypatch)
    assert problem.startswith(
        f"image {theirs}: refused: {theirs} has no valid signature by the configured key"
    )


def test_images_signed_reads_nothing_without_a_signer(monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = "127.0.0.1:9/m/w@sha256:" + "e" * 64  # nothing listens there: a read would fail
    assert stack_policy("images-signed", "dev", nowhere, None, monkeypatch) == []


@pytest.mark.parametrize(
    ("signer", "problem"),
    [
        ({"publicKey": "not a key"}, "imageSignature.publicKey: must be the PEM of a cosign public key"),
        ({"identity": "https://github.com/m/w"}, "imageSignature.issuer: keyless signing needs an https://"),
        ("a string", "imageSignature: must be a mapping"),
        ({"publicKey": "x", "extra": 1}, "imageSignature.extra: unknown key"),
    ],
)
def test_a_bad_signer_config_is_named_by_key(
    signer: object, problem: str, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    [found] = stack_policy("images-signed", "dev", image(registry, "bad-config", None), signer, monkeypatch)
    assert found.startswith(problem), found


def test_production_without_a_signer_is_flagged(monkeypatch: pytest.MonkeyPatch, key: Key) -> None:
    ref = "ghcr.io/mobius/preview-worker@sha256:" + "f" * 64
    [problem] = stack_policy("production-signer-named", "prod", ref, None, monkeypatch)
    assert problem.startswith("production names no image signer: set imageSignature")
    # staging is not a production instance
    assert stack_policy("production-signer-named", "staging", ref, None, monkeypatch) == []
    ours = {"publicKey": key.public_pem}
    assert stack_policy("production-signer-named", "prod", ref, ours, monkeypatch) == []
