"""Every Kubernetes object goes through the stack's own provider, after the cluster check.

The real program under mocks: the harness answers the cluster identity check (explicitly, with
``cluster=``); everything else runs unchanged.
"""

from __future__ import annotations

import pytest

from infra.cluster_identity import Seen, mismatch
from infra.components.provider import PROVIDER_NAME
from infra.config.model import load_stack_file
from infra.errors import TargetError
from infra.tools.snapshot.harness import ROOT, ProgramRun, run_program

PROVIDER_TYPE = "pulumi:providers:kubernetes"
OTHER = "11111111-2222-4333-8444-555555555555"
STACKS = ["dev", "staging", "prod"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_object_uses_the_stacks_explicit_provider(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    providers = [r for r in run.resources if r.type == PROVIDER_TYPE]
    assert [p.name for p in providers] == [PROVIDER_NAME]
    ref = next(u for u in run.urns if u.endswith(f"{PROVIDER_TYPE}::{PROVIDER_NAME}"))
    objects = [r for r in run.resources if r.custom and r.type.startswith("kubernetes:")]
    assert len(objects) > 10
    for r in objects:
        assert r.provider.startswith(ref + "::"), (
            f"{r.type} {r.name} uses {r.provider or 'the default provider'}"
        )


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_provider_is_built_from_the_stacks_cluster_config(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    target = load_stack_file(ROOT / f"Pulumi.{stack}.yaml").cluster
    (provider,) = [r for r in stack_runs[stack].resources if r.type == PROVIDER_TYPE]
    assert provider.inputs["context"] == target.context
    assert provider.inputs["kubeconfig"].endswith(target.kubeconfig.removeprefix("~"))  # type: ignore[union-attr]


def test_the_dev_provider_uses_the_ambient_kubeconfig(stack_runs: dict[str, ProgramRun]) -> None:
    (provider,) = [r for r in stack_runs["dev"].resources if r.type == PROVIDER_TYPE]
    assert "kubeconfig" not in provider.inputs and "context" not in provider.inputs


def test_another_cluster_fails_naming_both_before_anything_is_registered() -> None:
    target = load_stack_file(ROOT / "Pulumi.prod.yaml").cluster
    record = ProgramRun("prod")
    with pytest.raises(TargetError) as info:
        run_program("prod", record=record, cluster=Seen(uid=OTHER, server=target.server or ""))
    message = str(info.value)
    assert f"expected cluster {target.identity}" in message
    assert f"reaches cluster {OTHER}" in message
    assert "stack prod" in message
    assert record.resources == []


def test_the_right_uid_at_another_server_fails_too() -> None:
    target = load_stack_file(ROOT / "Pulumi.prod.yaml").cluster
    why = mismatch(target, Seen(uid=target.identity, server="https://elsewhere:6443"))
    assert why and "https://elsewhere:6443" in why and str(target.server) in why


@pytest.mark.parametrize(
    ("server", "ok"),
    [("https://127.0.0.1:6443", True), ("https://localhost:1", True), ("https://[::1]:6443", True),
     ("https://k8s.prod.mobius.dev:6443", False), ("https://10.0.0.1:6443", False)],
)  # fmt: skip
def test_the_local_identity_accepts_only_a_loopback_api_server(server: str, ok: bool) -> None:
    target = load_stack_file(ROOT / "Pulumi.dev.yaml").cluster
    assert (mismatch(target, Seen(uid=OTHER, server=server)) is None) == ok
