"""The preview account's objects (infra/manifests/preview_access.py): complete for what the program
declares, and nothing more. tests/e2e/test_engine_preview_access.py applies them to an RBAC API server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.components.declare import _BUILTIN
from infra.manifests import preview_access as pa
from infra.manifests.secret_sources import ENV_SECRET_NAME, VAULT_SECRET_NAME
from infra.tools.local.cluster.kube import crd_files

REPO = Path(__file__).resolve().parents[3]
#: Verbs the account must never hold: reading collections (every Secret, every ConfigMap of the
#: Namespace), deleting, or changing its own rights.
NEVER = {"list", "watch", "delete", "deletecollection", "update", "escalate", "bind", "impersonate", "*"}
PLURALS = {
    "Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "ConfigMap": "configmaps",
    "Secret": "secrets", "Service": "services", "Deployment": "deployments",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers", "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies", "CronJob": "cronjobs", "Ingress": "ingresses",
}  # fmt: skip


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def declarable() -> set[tuple[str, str]]:
    """(API group, plural) of every namespaced kind the program can declare, CRDs included."""
    found = {(api.rpartition("/")[0], PLURALS[kind]) for api, kind in _BUILTIN}
    for path in crd_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                found.add((doc["spec"]["group"], doc["spec"]["names"]["plural"]))
    return found - {("", "namespaces")}


def test_the_role_covers_every_kind_the_program_can_declare() -> None:
    role = by_kind(pa.preview_access("preview-x"))["Role"]
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert declarable() <= granted
    assert granted - declarable() == set()


def test_the_account_can_never_list_delete_or_read_the_vaults_secret() -> None:
    objects = pa.preview_access("preview-x")
    kinds = by_kind(objects)
    for rbac in (kinds["Role"], kinds["ClusterRole"]):
        for rule in rbac["rules"]:
            assert not NEVER & set(rule["verbs"]), rule
            assert "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            if "secrets" in rule["resources"]:
                assert rule["resourceNames"] == [ENV_SECRET_NAME] != [VAULT_SECRET_NAME]
    assert (
        kinds["Role"]["metadata"]["namespace"] == kinds["RoleBinding"]["metadata"]["namespace"] == "preview-x"
    )
    assert (
        "automountServiceAccountToken" in kinds["ServiceAccount"]
        and not kinds["ServiceAccount"]["automountServiceAccountToken"]
    )


def test_namespaces_by_name_only_and_no_write_to_a_platform_owned_one() -> None:
    own = by_kind(pa.preview_access("preview-x"))["ClusterRole"]["rules"]
    assert own == [
        {"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["kube-system", "preview-x"],
         "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["preview-x"],
         "verbs": list(pa.VERBS)},
    ]  # fmt: skip
    platform = by_kind(pa.preview_access("preview-x", own_namespace=False))["ClusterRole"]["rules"]
    assert platform == own[:1]


def test_the_admission_policy_denies_the_account_anything_but_a_dry_run() -> None:
    kinds = by_kind(pa.preview_access("preview-x"))
    policy, binding = kinds["ValidatingAdmissionPolicy"], kinds["ValidatingAdmissionPolicyBinding"]
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["validations"] == [{"expression": "request.dryRun == true", "message": pa.DRY_RUN_MESSAGE}]
    (condition,) = spec["matchConditions"]
    assert pa.ACCOUNT_USER in condition["expression"] and pa.ACCOUNT_GROUP in condition["expression"]
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["*/*"] and set(rule["operations"]) == {
        "CREATE",
        "UPDATE",
        "DELETE",
        "CONNECT",
    }
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    subjects = kinds["RoleBinding"]["subjects"]
    assert {(s["kind"], s["name"]) for s in subjects} == {("ServiceAccount", pa.ACCOUNT_NAME),
                                                          ("Group", pa.ACCOUNT_GROUP)}  # fmt: skip
    assert f"system:serviceaccount:{pa.ACCOUNT_NAMESPACE}:{pa.ACCOUNT_NAME}" == pa.ACCOUNT_USER


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "infra", "ci", "preview-access", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize(("stack", "namespace"), [("staging", "preview-staging"), ("prod", "preview")])
def test_the_command_prints_the_objects_for_the_stacks_namespace(stack: str, namespace: str) -> None:
    done = run_cli("--stack", stack)
    assert done.returncode == 0, done.stderr
    printed = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert printed == pa.preview_access(namespace)


def test_the_command_refuses_a_missing_or_invalid_stack_file(tmp_path: Path) -> None:
    done = run_cli("--stack", "qa")
    assert done.returncode == 2 and "--stack: no stack file Pulumi.qa.yaml" in done.stderr
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  mobius-preview-worker:namespace: Not_A_Name\n")
    done = run_cli("--stack", "bad", "--root", str(tmp_path))
    assert done.returncode == 2 and "namespace" in done.stderr and "Traceback" not in done.stderr
