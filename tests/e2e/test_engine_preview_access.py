"""The preview credentials, against the local API server's RBAC (issue 29, item 3).

The shipped objects (``python -m infra ci preview-access --stack S``) are applied by the admin,
and ``pulumi preview`` runs with a token of the preview ServiceAccount:

* dev and prod, deployed by the admin and then changed (dev also gains a canary
  Deployment and HPA: objects that do not exist yet), preview with the same plan as with admin
  credentials: every step, its operation and the fields it changes;
* ``pulumi up`` with them fails on the dry-run-only admission policy, and nothing changes: not
  the cluster's objects, not the stack's state (beyond the inputs of a refused update);
* what the account cannot do at all: list or read Secrets (the vault's copy above all), delete,
  touch another Namespace; and a write without ``dryRun`` is refused by the server, not only by
  the client's promise.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_kit import ScratchProject, drop_stack, kubectl_json, pulumi_json, pulumi_run, run

from infra.manifests import preview_access as pa
from infra.manifests.secret_sources import ENV_SECRET_NAME, VAULT_SECRET_NAME
from tests.doc_commands import group

pytestmark = pytest.mark.timeout(900)

#: dev (a Namespace the stack creates, no protection) and prod (protected): staging is neither
#: more nor less than dev here, and a third stack costs a minute of the suite. dev gets a Namespace
#: of its own: the stacks are dropped at the end (e2e_kit.drop_stack) while the next module
#: deploys the committed preview-dev.
NAMESPACES = {"dev": "preview-dev-pa", "prod": "preview"}
CANARY = "127.0.0.1:5000/mobius/preview-worker@sha256:" + "3" * 64
Step = tuple[str, str, tuple[str, ...], tuple[str, ...]]


def change(text: str, stack: str) -> str:
    """A reviewable change of each stack: the workers' concurrency (ConfigMaps, both Deployments'
    checksum); in dev also a canary (a Deployment and an HPA that do not exist yet)."""
    changed = text.replace("concurrency: 2\n", "concurrency: 3\n").replace(
        "concurrency: 4\n", "concurrency: 5\n"
    )
    if stack == "dev":
        changed = changed.replace("    weight: 0\n    image: null", f"    weight: 50\n    image: {CANARY}")
    assert changed.count("concurrency:") == text.count("concurrency:") and changed != text
    return changed


@pytest.fixture(scope="module")
def deployed(scratch_project: ScratchProject) -> Iterator[tuple[Path, dict[str, str], dict[str, str]]]:
    """Both stacks deployed by the admin (side by side), the preview account applied for each, then
    every stack file changed. Yields the project, the admin's and the preview account's environments."""
    project, admin = scratch_project("preview-access")
    dev_file, own = project / "Pulumi.dev.yaml", f"namespace: {NAMESPACES['dev']}\n"
    dev_file.write_text(dev_file.read_text().replace("namespace: preview-dev\n", own))
    assert own in dev_file.read_text()
    # docs/ci.md's block, as a cluster admin runs it: per stack (its `--stack staging` is each
    # stack here), with `python` the .venv's.
    (block,) = group("preview-access")
    apply_line, token_line = block.commands()
    assert "--stack staging" in apply_line
    shell = {**admin, "PATH": f"{Path(sys.executable).parent}:{admin['PATH']}"}
    for stack in NAMESPACES:
        pulumi_run(["stack", "init", stack], admin, project)
    each_stack(lambda stack: pulumi_run(["up", "--stack", stack, "--yes", "--skip-preview"], admin, project))
    for stack in NAMESPACES:
        run(["bash", "-c", "set -o pipefail; " + apply_line.replace("--stack staging", f"--stack {stack}")],
            shell, cwd=project)  # fmt: skip
    token = run(["bash", "-c", token_line], shell).strip()
    config = yaml.safe_load(Path(admin["KUBECONFIG"]).read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    kubeconfig = project.parent / "preview.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    kubeconfig.chmod(0o600)
    for stack in NAMESPACES:
        path = project / f"Pulumi.{stack}.yaml"
        path.write_text(change(path.read_text(), stack))
    yield project, admin, {**admin, "KUBECONFIG": str(kubeconfig)}
    each_stack(lambda stack: drop_stack(project, admin, stack))
    run(["kubectl", "delete", "namespace", pa.ACCOUNT_NAMESPACE, "--wait=false"], admin)


def each_stack(action: Callable[[str], object]) -> None:
    """``action`` for every stack at once (each has its own state; the engine waits on the cluster)."""
    with ThreadPoolExecutor(len(NAMESPACES)) as pool:
        for done in [pool.submit(action, stack) for stack in NAMESPACES]:
            done.result()


def plan(project: Path, environ: dict[str, str], stack: str) -> list[Step]:
    """The preview's steps (the stack's provider apart: see below), sorted."""
    found = pulumi_json(["preview", "--stack", stack, "--json"], environ, project)
    errors = [d for d in found.get("diagnostics", []) if d.get("severity") == "error"]
    assert errors == []
    steps: list[Step] = []
    for step in found["steps"]:
        if "::pulumi:providers:" in step["urn"]:
            # Its input is the kubeconfig itself: another credential is an in-place update of the
            # provider, never a replacement of what it manages.
            assert step["op"] in ("same", "update"), step["op"]
            assert set(step.get("diffReasons") or []) <= {"kubeconfig"}
            continue
        reasons, fields = step.get("diffReasons") or [], step.get("detailedDiff") or {}
        steps.append(
            (step["op"], step["urn"].rsplit("::", 1)[-1], tuple(sorted(reasons)), tuple(sorted(fields)))
        )
    return sorted(steps)


@pytest.mark.parametrize("stack", list(NAMESPACES))
def test_a_preview_with_the_preview_account_plans_exactly_what_the_admin_would(
    deployed: tuple[Path, dict[str, str], dict[str, str]], stack: str
) -> None:
    project, admin, preview = deployed
    as_admin, as_account = plan(project, admin, stack), plan(project, preview, stack)
    assert as_account == as_admin
    changed = {name for op, name, *_ in as_admin if op != "same"}
    assert "preview-worker-config" in changed and "preview-worker-stable-deployment" in changed
    if stack == "dev":
        assert ("create", "preview-worker-canary-deployment", (), ()) in as_admin


#: A rule of the cluster's own that the program knows nothing about: only the cluster's registry,
#: in the dev stack's Namespace. Only a server-side dry run sees it.
REGISTRY_POLICY = "e2e-cluster-registry-only"
REGISTRY_MESSAGE = "images come from the cluster's registry only"


def registry_policy() -> list[dict[str, Any]]:
    api = "admissionregistration.k8s.io/v1"
    deployments = {"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"],
                   "operations": ["CREATE", "UPDATE"]}  # fmt: skip
    dev_only = {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACES["dev"]}}
    match = {"resourceRules": [deployments], "namespaceSelector": dev_only}
    rule = "object.spec.template.spec.containers.all(c, c.image.startsWith('127.0.0.1:5000/'))"
    return [
        {"apiVersion": api, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": REGISTRY_POLICY},
         "spec": {"failurePolicy": "Fail", "matchConstraints": match,
                  "validations": [{"expression": rule, "message": REGISTRY_MESSAGE}]}},
        {"apiVersion": api, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": REGISTRY_POLICY},
         "spec": {"policyName": REGISTRY_POLICY, "validationActions": ["Deny"]}},
    ]  # fmt: skip


def test_the_preview_account_dry_runs_on_the_server_so_it_sees_what_the_cluster_refuses(
    deployed: tuple[Path, dict[str, str], dict[str, str]],
) -> None:
    """A read-only account would preview this canary as fine (its dry run is forbidden, and the
    provider falls back to a client-side plan); the preview account's preview fails as the
    admin's does, and as ``up`` would."""
    project, admin, preview = deployed
    stack_file = project / "Pulumi.dev.yaml"
    reviewed = stack_file.read_text()
    run(["kubectl", "apply", "--server-side", "-f", "-"], admin, stdin=yaml.safe_dump_all(registry_policy()))
    try:
        stack_file.write_text(reviewed.replace(CANARY, "ghcr.io/elsewhere/preview-worker@sha256:" + "4" * 64))
        for environ in (admin, preview):
            out = pulumi_run(["preview", "--stack", "dev"], environ, project, expect_fail=True)
            assert REGISTRY_MESSAGE in out and "preview-worker-canary" in out, out
    finally:
        stack_file.write_text(reviewed)
        kinds = "validatingadmissionpolicybinding,validatingadmissionpolicy"
        run(["kubectl", "delete", kinds, REGISTRY_POLICY], admin)


def live(environ: dict[str, str]) -> dict[tuple[str, str, str], str]:
    """(namespace, kind, name) → uid, labels, annotations and spec (or data) of every object of the
    stacks: what a write would change (controllers write only status)."""
    kinds = (
        "deployments,services,configmaps,serviceaccounts,horizontalpodautoscalers,networkpolicies,cronjobs"
    )
    found = {}
    for namespace in NAMESPACES.values():
        for item in kubectl_json(environ, "get", kinds, "-n", namespace)["items"]:
            meta = item["metadata"]
            content = [
                meta["uid"],
                meta.get("labels"),
                meta.get("annotations"),
                item.get("spec", item.get("data")),
            ]
            found[namespace, item["kind"], meta["name"]] = json.dumps(content, sort_keys=True)
    return found


#: How Pulumi's state marks a secret value (its ciphertext is new at every write of the state).
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def opaque_secrets(value: Any) -> Any:
    """``value`` with every secret's ciphertext replaced by one marker."""
    if isinstance(value, dict):
        return "<secret>" if SECRET_SIG in value else {k: opaque_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [opaque_secrets(v) for v in value]
    return value


def objects_in_state(project: Path, environ: dict[str, str], stack: str) -> dict[str, Any]:
    """URN → id, inputs and outputs of the Kubernetes objects the stack's state records (not its
    provider, nor its components, nor bookkeeping such as timestamps)."""
    deployment = json.loads(pulumi_run(["stack", "export", "--stack", stack], environ, project))["deployment"]
    return {
        r["urn"]: opaque_secrets((r.get("id"), r.get("inputs"), r.get("outputs")))
        for r in deployment["resources"]
        if r["type"].startswith("kubernetes:")
    }


def test_up_with_the_preview_account_fails_and_changes_nothing(
    deployed: tuple[Path, dict[str, str], dict[str, str]],
) -> None:
    """Only dev's canary this time (creates and patches, which its Role allows as dry runs): the
    API server's dry-run-only policy refuses each real write. The attempt leaves the stack's
    provider holding the preview kubeconfig in a state a CI preview job could not have written
    (its backend role reads only); it is put back from the export, as it was."""
    project, admin, preview = deployed
    stack_file = project / "Pulumi.dev.yaml"
    reviewed = stack_file.read_text()
    saved = project.parent / "dev-state.json"
    saved.write_text(pulumi_run(["stack", "export", "--stack", "dev"], admin, project))
    stack_file.write_text(reviewed.replace("concurrency: 3\n", "concurrency: 2\n"))
    before, recorded = live(admin), objects_in_state(project, admin, "dev")
    planned = {name for op, name, *_ in plan(project, admin, "dev") if op != "same"}
    try:
        out = pulumi_run(
            ["up", "--stack", "dev", "--yes", "--skip-preview"], preview, project, expect_fail=True
        )
        refused = [
            line for line in out.splitlines() if line.strip().startswith("error:") and "forbidden" in line
        ]
        assert refused and all(pa.DRY_RUN_MESSAGE in line for line in refused), out
        assert live(admin) == before
        # The state keeps every object and id. An object whose update the engine had started may
        # record the inputs it tried (pulumi-kubernetes keeps a failed or cancelled update's
        # inputs as a partial result; which ones start before the first refusal stops the update
        # varies, and one cancelled in flight is not named as refused): each such object must be
        # one the change plans to update, and the cluster above is unchanged.
        after = objects_in_state(project, admin, "dev")
        assert after.keys() == recorded.keys()
        assert all(after[urn][0] == recorded[urn][0] for urn in recorded)
        changed = {urn.rsplit("::", 1)[1] for urn in recorded if after[urn] != recorded[urn]}
        assert refused_resources(out) <= planned, (planned, out)
        assert changed <= planned, (changed, planned, out)
    finally:
        stack_file.write_text(reviewed)
        pulumi_run(["stack", "import", "--stack", "dev", "--file", str(saved)], admin, project)


def refused_resources(out: str) -> set[str]:
    """Names of the resources whose block in ``pulumi up``'s output holds a refusal."""
    names, current = set(), None
    for line in out.splitlines():
        head = re.match(r"^\s+\S+:\S+ \((\S+)\):$", line)
        if head:
            current = head.group(1)
        elif current and line.strip().startswith("error:") and "forbidden" in line:
            names.add(current)
    return names


def account_kubectl(preview: dict[str, str], *args: str) -> tuple[int, str]:
    done = subprocess.run(["kubectl", *args], env=preview, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def test_what_the_preview_account_cannot_do(deployed: tuple[Path, dict[str, str], dict[str, str]]) -> None:
    _, admin, preview = deployed
    ns = NAMESPACES["dev"]
    run(["kubectl", "create", "secret", "generic", VAULT_SECRET_NAME, "-n", ns, "--from-literal=k=v"], admin)
    forbidden = [
        ("get", "secrets", "-n", ns),  # no list: not even the names
        ("get", "secret", VAULT_SECRET_NAME, "-n", ns),  # the operator's copy of the vault
        ("delete", "configmap", "preview-worker-config", "-n", ns, "--dry-run=server"),  # no delete verb
        ("get", "configmaps", "-n", "kube-system"),  # nothing outside the stack's Namespace
        ("create", "namespace", "elsewhere", "--dry-run=server"),
        ("auth", "can-i", "create", "rolebindings", "-n", ns),
    ]
    for args in forbidden:
        code, out = account_kubectl(preview, *args)
        assert code != 0, (args, out)
    # The write verbs it holds work only as dry runs: the server refuses the real request.
    patch = ["patch", "configmap", "preview-worker-config", "-n", ns, "--type=merge",
             "-p", '{"metadata":{"labels":{"tampered":"yes"}}}']  # fmt: skip
    code, out = account_kubectl(preview, *patch, "--dry-run=server")
    assert code == 0, out
    code, out = account_kubectl(preview, *patch)
    assert code != 0 and pa.DRY_RUN_MESSAGE in out, out
    labels = kubectl_json(admin, "get", "configmap", "preview-worker-config", "-n", ns)["metadata"]["labels"]
    assert "tampered" not in labels
    # Its own Secret (whose values the stack's state holds anyway) it may read, by name only.
    code, out = account_kubectl(preview, "get", "secret", ENV_SECRET_NAME, "-n", ns, "-o", "name")
    assert code == 0, out
