"""`secrets.provider: vault` against a real Vault dev server on loopback (built from the
hashicorp/vault Go module by deps/setup.d/40-vault.sh). Fails, never skips, without it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
import requests

from infra.components import vault
from infra.errors import VaultError
from infra.offline.harness import run_program
from tests.servers import free_port

VAULT_BIN = Path.home() / ".cache" / "mobius-preview-worker" / "vault" / "vault-v1.21.0"
ROOT_TOKEN = "root-token-for-tests"
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
def vault_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert VAULT_BIN.is_file(), f"{VAULT_BIN} is missing: run deps/setup.d/40-vault.sh (./dev test does)"
    home = tmp_path_factory.mktemp("vault-home")
    url = f"http://127.0.0.1:{free_port()}"
    log = (home / "vault.log").open("w")
    proc = subprocess.Popen(
        [
            str(VAULT_BIN),
            "server",
            "-dev",
            f"-dev-listen-address={url.removeprefix('http://')}",
            f"-dev-root-token-id={ROOT_TOKEN}",
            "-dev-no-store-token",
        ],
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "")},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = hvac.Client(url=url, token=ROOT_TOKEN, timeout=2)
    deadline = time.monotonic() + 30
    while True:
        # Not listening yet (connection refused) or still unsealing.
        with contextlib.suppress(requests.exceptions.ConnectionError, hvac.exceptions.VaultError):
            if client.sys.is_initialized() and not client.sys.is_sealed():
                break
        assert proc.poll() is None, (home / "vault.log").read_text()
        assert time.monotonic() < deadline, "vault dev server did not start in 30 s"
        time.sleep(0.2)
    client.secrets.kv.v2.create_or_update_secret(
        path="mobius/dev", secret={"redis_url": REDIS_URL, **S3_VALUES}
    )
    yield url
    proc.terminate()
    proc.wait(timeout=15)
    log.close()


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
