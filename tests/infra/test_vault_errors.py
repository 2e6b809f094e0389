"""`secrets.provider: vault` failure modes that need no Vault server: missing environment and
an address where nothing listens (a real closed loopback port). A Vault failure stops the
program before any resource is registered."""

from __future__ import annotations

import hvac
import pytest

from infra import vault
from infra.errors import VaultError
from infra.tools.local.ports import free_port
from infra.tools.snapshot.harness import ProgramRun, run_program

STORE_KEYS = {
    "AWS_ACCESS_KEY_ID": "s3_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "s3_secret_access_key",
    "PREVIEW_API_TOKENS": "api_tokens",
}
VAULT_MODE = {
    "secrets": {"provider": "vault", "path": "mobius/dev", "keys": {"REDIS_URL": "redis_url", **STORE_KEYS}}
}


def closed_port() -> int:
    return free_port()  # nothing listens there once its socket is closed


def test_missing_environment_is_named() -> None:
    with pytest.raises(VaultError) as info:
        vault.client_from_env({"VAULT_ADDR": "http://127.0.0.1:8200"})
    assert str(info.value) == "secrets.provider is vault but VAULT_TOKEN not set in the environment"
    with pytest.raises(VaultError, match="VAULT_ADDR and VAULT_TOKEN not set"):
        vault.client_from_env({})


def test_unreachable_vault_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    client = hvac.Client(url=url, token="t", timeout=2)
    with pytest.raises(VaultError) as info:
        vault.read_kv2(client, "secret", "mobius/dev", {"REDIS_URL": "redis_url"})
    assert str(info.value) == f"vault: cannot reach {url}: ConnectionError"


def test_vault_failure_registers_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("VAULT_TOKEN", "t")
    record = ProgramRun("dev")
    with pytest.raises(VaultError, match="vault: cannot reach"):
        run_program("dev", overrides={**VAULT_MODE, "redisUrl": None}, record=record)
    assert record.resources == []


def test_external_secrets_mode_never_contacts_vault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    run = run_program("dev")  # S3 keys via an ExternalSecret, REDIS_URL from redisUrl: no Vault client
    assert run.object("Secret", "preview-worker-env")["stringData"] == {"REDIS_URL": "<secret>"}
