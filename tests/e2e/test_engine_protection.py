"""What a stack must not lose, through the real engine against the local cluster (issue 29, item 2).

* A prod-like stack (``protect: true``): ``pulumi destroy`` refuses, and every object stays.
* A stack in an existing, platform-owned Namespace (``existingNamespace: true``): ``destroy``
  removes the stack's objects and leaves the Namespace.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_kit import ScratchProject, kubectl_json, pulumi_run, run

STACK = "dev"
pytestmark = pytest.mark.timeout(600)


def stack_file(project: Path, namespace: str, extra: str) -> None:
    path = project / f"Pulumi.{STACK}.yaml"
    text = path.read_text().replace("namespace: preview-dev", f"namespace: {namespace}")
    path.write_text(text.rstrip("\n") + "\n" + extra)


def in_namespace(environ: dict[str, str], namespace: str) -> dict[tuple[str, str], str]:
    """(kind, name) → uid of the stack's objects in ``namespace``."""
    kinds = "deployments,services,configmaps,serviceaccounts,horizontalpodautoscalers,networkpolicies"
    items = kubectl_json(environ, "get", kinds, "-n", namespace, "-l", "app.kubernetes.io/instance")["items"]
    return {(i["kind"], i["metadata"]["name"]): i["metadata"]["uid"] for i in items}


def namespace_uid(environ: dict[str, str], namespace: str) -> str | None:
    names = {
        n["metadata"]["name"]: n["metadata"]["uid"]
        for n in kubectl_json(environ, "get", "namespaces")["items"]
    }
    return names.get(namespace)


def test_destroy_of_a_protected_stack_refuses_and_leaves_everything(scratch_project: ScratchProject) -> None:
    project, environ = scratch_project("engine-protect")
    namespace = "preview-protected"
    stack_file(project, namespace, "  mobius-preview-worker:protect: true\n")
    pulumi_run(["stack", "init", STACK], environ, project)
    try:
        pulumi_run(["up", "--stack", STACK, "--yes", "--skip-preview"], environ, project)
        before_ns, before = namespace_uid(environ, namespace), in_namespace(environ, namespace)
        assert before_ns and ("Deployment", "preview-worker-stable") in before
        out = pulumi_run(["destroy", "--stack", STACK, "--yes"], environ, project, expect_fail=True)
        assert "protected" in out, out
        assert namespace_uid(environ, namespace) == before_ns
        assert in_namespace(environ, namespace) == before
        exported = json.loads(pulumi_run(["stack", "export", "--stack", STACK], environ, project))
        protected = {
            r["urn"].rsplit("::", 1)[-1] for r in exported["deployment"]["resources"] if r.get("protect")
        }
        assert {"preview-worker-namespace", "preview-worker-serviceaccount"} <= protected
    finally:
        pulumi_run(["state", "unprotect", "--all", "--yes", "--stack", STACK], environ, project)
        pulumi_run(["destroy", "--stack", STACK, "--yes"], environ, project)
    assert namespace_uid(environ, namespace) is None or in_namespace(environ, namespace) == {}


def test_destroy_in_an_existing_namespace_leaves_the_namespace(scratch_project: ScratchProject) -> None:
    project, environ = scratch_project("engine-existing-ns")
    namespace = "preview-platform"
    run(["kubectl", "create", "namespace", namespace], environ)
    try:
        uid = namespace_uid(environ, namespace)
        stack_file(project, namespace, "  mobius-preview-worker:existingNamespace: true\n")
        pulumi_run(["stack", "init", STACK], environ, project)
        pulumi_run(["up", "--stack", STACK, "--yes", "--skip-preview"], environ, project)
        assert ("Deployment", "preview-worker-stable") in in_namespace(environ, namespace)
        pulumi_run(["destroy", "--stack", STACK, "--yes"], environ, project)
        assert namespace_uid(environ, namespace) == uid
        assert in_namespace(environ, namespace) == {}
    finally:
        run(["kubectl", "delete", "namespace", namespace, "--wait=false"], environ)
