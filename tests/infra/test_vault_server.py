"""`secrets.provider: vault` against a real Vault dev server on loopback (built from the
hashicorp/vault Go module by deps/setup.d/40-vault.sh). Fails, never skips, without it."""

from __future__ import annotations

import json

import hvac
import hvac.exceptions
import pytest

from infra import vault
from infra.errors import VaultError
from infra.tools.snapshot.harness import run_program
from tests.servers import VAULT_ROOT_TOKEN as ROOT_TOKEN
from tests.servers import VaultServer, shared_vault_server  # noqa: F401 (registers `vault_server`)

REDIS_URL = "redis://:s3cret-from-vault@redis.redis:6379/0"
S3_VALUES = {
    "s3_access_key_id": "AKIAVAULTTESTKEY0001",
    "s3_secret_access_key": "vault-s3-secret-0001",
    "api_tokens": "vault-api-token-0123456789",
}
STORE_KEYS = {
    "AWS_ACCESS_KEY_ID": "s3_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "s3_secret_access_key",
    "PREVIEW_API_TOKENS": "api_tokens",
}


@pytest.fixture(scope="module")
def vault_url(vault_server: VaultServer) -> str:
    vault_server.client().secrets.kv.v2.create_or_update_secret(
        path="mobius/dev", secret={"redis_url": REDIS_URL, **S3_VALUES}
    )
    return vault_server.url


def vault_env(monkeypatch: pytest.MonkeyPatch, url: str, token: str = ROOT_TOKEN) -> None:
    monkeypatch.setenv("VAULT_ADDR", url)
    monkeypatch.setenv("VAULT_TOKEN", token)


def test_program_reads_vault_and_wraps_values_as_secrets(
    vault_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault_env(monkeypatch, vault_url)
    run = run_program(
        "dev",
        overrides={
            "redisUrl": None,
            "secrets": {
                "provider": "vault",
                "mount": "secret",
                "path": "mobius/dev",
                "keys": {"REDIS_URL": "redis_url", **STORE_KEYS},
            },
        },
    )
    secret = run.resource("Secret", "preview-worker-env")
    assert secret.has_secret("stringData")  # encrypted in state, masked in output
    assert secret.inputs["stringData"]["value"] == {
        "REDIS_URL": REDIS_URL,
        "AWS_ACCESS_KEY_ID": S3_VALUES["s3_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": S3_VALUES["s3_secret_access_key"],
        "PREVIEW_API_TOKENS": S3_VALUES["api_tokens"],
    }
    assert run.object("Secret", "preview-worker-env")["stringData"] == dict.fromkeys(
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PREVIEW_API_TOKENS", "REDIS_URL"), "<secret>"
    )
    assert run.objects("ExternalSecret") == []  # vault mode: the Secret is Pulumi's own
    others = json.dumps([r.inputs for r in run.resources if r is not secret])
    for value in ("s3cret-from-vault", *S3_VALUES.values()):
        assert value not in others


def test_missing_path_property_and_forbidden_are_named(vault_url: str) -> None:
    root = hvac.Client(url=vault_url, token=ROOT_TOKEN)
    with pytest.raises(VaultError) as info:
        vault.read_kv2(root, "secret", "mobius/nope", {"REDIS_URL": "redis_url"})
    assert str(info.value) == f"vault: no secret at {vault_url} secret/mobius/nope"
    with pytest.raises(VaultError) as info:
        vault.read_kv2(root, "secret", "mobius/dev", {"REDIS_URL": "url"})
    assert str(info.value) == f"vault: {vault_url} secret/mobius/dev has no property url"
    weak = root.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    with pytest.raises(VaultError) as info:
        vault.read_kv2(
            hvac.Client(url=vault_url, token=weak), "secret", "mobius/dev", {"REDIS_URL": "redis_url"}
        )
    assert str(info.value) == (
        f"vault: permission denied reading {vault_url} secret/mobius/dev (check VAULT_TOKEN's policy)"
    )


def approle(root: hvac.Client, uses: int = 0) -> tuple[str, str]:
    """A deploy AppRole that may read mobius/dev only: its role id and a fresh secret id."""
    if "approle/" not in root.sys.list_auth_methods():
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy(
        "deploy-read", 'path "secret/data/mobius/dev" { capabilities = ["read"] }'
    )
    root.auth.approle.create_or_update_approle(
        "deploy", token_policies=["deploy-read"], token_ttl="5m", secret_id_num_uses=uses
    )
    role_id = root.auth.approle.read_role_id("deploy")["data"]["role_id"]
    return role_id, root.auth.approle.generate_secret_id("deploy")["data"]["secret_id"]


def live_deploy_tokens(root: hvac.Client) -> int:
    accessors = root.auth.token.list_accessors()["data"]["keys"]
    metas = (root.auth.token.lookup_accessor(a)["data"].get("meta") or {} for a in accessors)
    return sum(1 for meta in metas if meta.get("role_name") == "deploy")


def test_program_reads_vault_with_an_approle_and_revokes_its_token(
    vault_url: str, vault_server: VaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = vault_server.client()
    role_id, secret_id = approle(root)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.setenv("VAULT_ADDR", vault_url)
    monkeypatch.setenv("VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", secret_id)
    keys = {
        "secrets": {
            "provider": "vault",
            "path": "mobius/dev",
            "keys": {"REDIS_URL": "redis_url", **STORE_KEYS},
        }
    }
    run = run_program("dev", overrides={"redisUrl": None, **keys})
    assert (
        run.resource("Secret", "preview-worker-env").inputs["stringData"]["value"]["REDIS_URL"] == REDIS_URL
    )
    assert live_deploy_tokens(root) == 0  # the login's token did its one read and was revoked


def test_approle_refusals_name_the_mount_never_the_secret_id(
    vault_url: str, vault_server: VaultServer
) -> None:
    role_id, secret_id = approle(vault_server.client(), uses=1)
    env = {"VAULT_ADDR": vault_url, "VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id}
    assert vault.read_from_env("secret", "mobius/dev", {"REDIS_URL": "redis_url"}, env) == {
        "REDIS_URL": REDIS_URL
    }
    for used_or_wrong in (secret_id, "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(VaultError) as info:
            vault.client_from_env({**env, "VAULT_SECRET_ID": used_or_wrong})
        assert str(info.value) == (
            f"vault: AppRole login at {vault_url} auth/approle refused (check VAULT_ROLE_ID/VAULT_SECRET_ID)"
        )
    with pytest.raises(VaultError) as info:
        vault.client_from_env({**env, "VAULT_TOKEN": "t"})
    assert "not both" in str(info.value)
    with pytest.raises(VaultError) as info:
        vault.client_from_env({"VAULT_ADDR": vault_url, "VAULT_ROLE_ID": role_id})
    assert str(info.value) == "secrets.provider is vault but VAULT_SECRET_ID not set in the environment"
