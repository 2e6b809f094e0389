"""A stack is bound to its cluster, through the real engine against the local cluster (issue 29).

In file order, on one dev stack:

* the stack is deployed by the program as it was before the binding (every object through
  Pulumi's default provider, no cluster check: the real ``__main__.py`` with the two removed);
* the real program, with ``cluster.identity`` set to the local cluster's real kube-system UID,
  previews with no replacement (the explicit provider takes over every object in place), and
  ``up`` keeps every object (same UIDs);
* with another UID declared, ``pulumi preview`` and ``pulumi up`` fail naming the expected and
  the actual cluster, before any resource: the state and the cluster are unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_kit import ScratchProject, drop_stack, kubectl_json, pulumi_json, pulumi_run, run

from infra.tools.local.layout import REPO_ROOT
from infra.tools.local.project import LOCAL_CLUSTER_SECTION

STACK = "dev"
NAMESPACE = "preview-dev"
OTHER_UID = "11111111-2222-4333-8444-555555555555"
REPLACING = {"replace", "create-replacement", "delete-replaced"}

pytestmark = pytest.mark.timeout(600)

#: The program before the binding: the real one with the cluster check and the provider removed.
DEFAULT_PROVIDER_PROGRAM = f'''"""The program before issue 29: every object through the default provider."""
import runpy

from infra.components import stack

stack.check_cluster = lambda cfg, instance: None
stack.cluster_provider = lambda cfg: None
runpy.run_path({str(REPO_ROOT / "__main__.py")!r}, run_name="__main__")
'''


@pytest.fixture(scope="module")
def dev(scratch_project: ScratchProject) -> Iterator[tuple[Path, dict[str, str]]]:
    """A project copy with the dev stack initialised in a file backend of this module only."""
    project, environ = scratch_project("engine-target")
    pulumi_run(["stack", "init", STACK], environ, project)
    yield project, environ
    drop_stack(project, environ, STACK)  # preview-dev: no later module deploys it


def bind(project: Path, identity: str) -> None:
    """Set the dev stack's ``cluster.identity``."""
    stack_file = project / f"Pulumi.{STACK}.yaml"
    text = stack_file.read_text()
    assert LOCAL_CLUSTER_SECTION in text or "    identity: " in text
    lines = [
        f"    identity: {identity}" if ln.startswith("    identity: ") else ln for ln in text.splitlines()
    ]
    stack_file.write_text("\n".join(lines) + "\n")


def cluster_uid(environ: dict[str, str]) -> str:
    return run(
        ["kubectl", "get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}"], environ
    ).strip()


def live_objects(environ: dict[str, str]) -> dict[tuple[str, str], tuple[str, str]]:
    """(kind, name) → (uid, resourceVersion) of the namespace and everything in it."""
    found = {}
    kinds = ",".join([
        "deployments", "services", "configmaps", "serviceaccounts", "horizontalpodautoscalers",
        "poddisruptionbudgets", "networkpolicies", "cronjobs",
    ])  # fmt: skip
    for item in kubectl_json(environ, "get", kinds, "-n", NAMESPACE)["items"]:
        meta = item["metadata"]
        found[item["kind"], meta["name"]] = (meta["uid"], meta["resourceVersion"])
    meta = kubectl_json(environ, "get", "namespace", NAMESPACE)["metadata"]
    found["Namespace", NAMESPACE] = (meta["uid"], meta["resourceVersion"])
    return found


def state(project: Path, environ: dict[str, str]) -> list[dict[str, Any]]:
    exported = json.loads(pulumi_run(["stack", "export", "--stack", STACK], environ, project))
    resources: list[dict[str, Any]] = exported["deployment"].get("resources") or []
    return resources


def test_the_stack_deployed_through_the_default_provider(dev: tuple[Path, dict[str, str]]) -> None:
    project, environ = dev
    (project / "__main__.py").unlink()
    (project / "__main__.py").write_text(DEFAULT_PROVIDER_PROGRAM)
    pulumi_run(["up", "--stack", STACK, "--yes", "--skip-preview"], environ, project)
    providers = {
        r["urn"].rsplit("::", 1)[-1] for r in state(project, environ) if "pulumi:providers:" in r["type"]
    }
    assert all(name.startswith("default") for name in providers), providers
    assert ("Deployment", "preview-worker-stable") in live_objects(environ)


def test_the_explicit_provider_takes_over_every_object_without_a_replacement(
    dev: tuple[Path, dict[str, str]],
) -> None:
    project, environ = dev
    (project / "__main__.py").unlink()
    (project / "__main__.py").symlink_to(REPO_ROOT / "__main__.py")
    bind(project, cluster_uid(environ))
    before = live_objects(environ)
    plan = pulumi_json(["preview", "--stack", STACK, "--json"], environ, project)
    ops = {(s["op"], s["urn"].rsplit("::", 1)[-1]) for s in plan["steps"]}
    assert not {op for op, _ in ops} & REPLACING, sorted(ops)
    assert ("create", "preview-worker-cluster") in ops
    pulumi_run(["up", "--stack", STACK, "--yes", "--skip-preview"], environ, project)
    after = live_objects(environ)
    assert {key: uid for key, (uid, _) in after.items()} == {key: uid for key, (uid, _) in before.items()}
    kube = [r for r in state(project, environ) if r["type"].startswith("kubernetes:")]
    assert kube and all("::preview-worker-cluster::" in r["provider"] for r in kube)
    pulumi_run(["preview", "--stack", STACK, "--expect-no-changes"], environ, project)


def test_another_cluster_identity_fails_before_any_resource_and_changes_nothing(
    dev: tuple[Path, dict[str, str]],
) -> None:
    project, environ = dev
    real = cluster_uid(environ)
    bind(project, OTHER_UID)
    before_state, before_live = state(project, environ), live_objects(environ)
    for command in (["preview", "--stack", STACK], ["up", "--stack", STACK, "--yes"]):
        out = pulumi_run(command, environ, project, expect_fail=True)
        assert f"expected cluster {OTHER_UID}" in out, out
        assert f"reaches cluster {real}" in out, out
        assert "stack dev is bound to another cluster" in out
        assert "Traceback" not in out
    assert state(project, environ) == before_state
    assert live_objects(environ) == before_live
    bind(project, real)
