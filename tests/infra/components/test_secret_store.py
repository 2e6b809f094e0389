"""``secrets.store``: the stack declares its own SecretStore (Vault's Kubernetes auth) and identity."""

from __future__ import annotations

from typing import Any

import pytest

from infra.errors import ConfigError
from infra.manifests.secret_sources import STORE_SERVICE_ACCOUNT, VAULT_SECRET_NAME
from infra.tools.snapshot.harness import ROOT, run_program, stack_file_config

VAULT = "https://vault.example.internal:8200"


def dev_secrets(**changes: Any) -> dict[str, Any]:
    config, _ = stack_file_config(ROOT / "Pulumi.dev.yaml")
    secrets: dict[str, Any] = dict(config["mobius-preview-worker:secrets"])
    secrets.update(changes)
    return secrets


def test_the_store_and_its_identity_are_declared_in_the_stacks_namespace() -> None:
    store = {"server": VAULT + "/", "authMount": "k8s-prod", "role": "preview"}
    run = run_program("dev", overrides={"secrets": dev_secrets(storeKind="SecretStore", store=store)})
    (account,) = [a for a in run.objects("ServiceAccount") if a["metadata"]["name"] == STORE_SERVICE_ACCOUNT]
    assert account["automountServiceAccountToken"] is False
    (declared,) = run.objects("SecretStore")
    assert declared["metadata"]["namespace"] == account["metadata"]["namespace"] == "preview-dev"
    assert declared["spec"]["provider"]["vault"] == {
        "server": VAULT,
        "path": "secret",
        "version": "v2",
        "auth": {
            "kubernetes": {
                "mountPath": "k8s-prod",
                "role": "preview",
                "serviceAccountRef": {"name": STORE_SERVICE_ACCOUNT},
            }
        },
    }
    es = run.object("ExternalSecret", VAULT_SECRET_NAME)
    assert es["spec"]["secretStoreRef"] == {"name": declared["metadata"]["name"], "kind": "SecretStore"}
    # No RBAC is granted to the store's identity: Vault's role binds to its name and namespace.
    assert run.objects("RoleBinding") == run.objects("ClusterRoleBinding") == []


def test_without_a_store_only_the_external_secret_is_declared() -> None:
    run = run_program("dev")
    assert run.objects("SecretStore") == []
    assert STORE_SERVICE_ACCOUNT not in {a["metadata"]["name"] for a in run.objects("ServiceAccount")}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"store": {"server": VAULT}},
            "secrets.storeKind: must be SecretStore when secrets.store declares it",
        ),
        (
            {"provider": "vault", "storeKind": "SecretStore", "store": {"server": VAULT}},
            "secrets.store: is the External Secrets Operator's: set provider external-secrets",
        ),
        (
            {"storeKind": "SecretStore", "store": {"server": "vault:8200"}},
            "secrets.store.server: must be Vault's http(s)://host[:port], got 'vault:8200'",
        ),
        (
            {"storeKind": "SecretStore", "store": {"server": VAULT, "role": "../root"}},
            "secrets.store.role: must be a Vault path segment (letters, digits, . _ - /), got '../root'",
        ),
    ],
)
def test_store_config_errors_name_the_key(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        run_program("dev", overrides={"secrets": dev_secrets(**changes)})
    assert problem in info.value.problems
