"""``declare``: every manifest becomes the matching pulumi-kubernetes resource, unchanged but for the
server-side-apply force annotation."""

from __future__ import annotations

import pytest

from infra.components.declare import _BUILTIN
from infra.manifests.common import ANNOTATION_PATCH_FORCE
from infra.tools.snapshot.harness import ProgramRun

STACKS = ["dev", "staging", "prod"]


def _kubernetes(run: ProgramRun) -> list[tuple[str, dict[str, object]]]:
    return [(r.type, r.manifest) for r in run.resources if r.custom and r.type.startswith("kubernetes:")]


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_is_forced_on_apply(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    objects = _kubernetes(stack_runs[stack])
    assert objects
    for _, manifest in objects:
        metadata = manifest["metadata"]
        assert isinstance(metadata, dict)
        assert metadata["annotations"][ANNOTATION_PATCH_FORCE] == "true", metadata["name"]


@pytest.mark.parametrize("stack", STACKS)
def test_each_kind_is_its_typed_resource_or_a_custom_resource(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    kinds = {kind for _, kind in _BUILTIN}
    for type_token, manifest in _kubernetes(stack_runs[stack]):
        api, kind = str(manifest["apiVersion"]), str(manifest["kind"])
        group = api if "/" in api else f"core/{api}"
        assert type_token == f"kubernetes:{group}:{kind}"
        assert (kind in kinds) == ((api, kind) in _BUILTIN)


def test_nested_camel_case_keys_pass_through(stack_runs: dict[str, ProgramRun]) -> None:
    deployment = stack_runs["prod"].object("Deployment", "preview-worker-stable")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["progressDeadlineSeconds"] == 600
