"""Reading the worker's secrets from Vault KV v2 at deploy time (``secrets.provider: vault``).

``VAULT_ADDR`` and ``VAULT_TOKEN`` come from the environment of ``pulumi up``;
every failure becomes a :class:`~infra.errors.VaultError` that names the
address, mount, path or key involved and never the secret values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import hvac
import hvac.exceptions
import requests

from infra.errors import VaultError


def client_from_env(env: Mapping[str, str] | None = None) -> hvac.Client:
    """An hvac client for ``VAULT_ADDR``/``VAULT_TOKEN`` (both required)."""
    env = os.environ if env is None else env
    missing = [name for name in ("VAULT_ADDR", "VAULT_TOKEN") if not env.get(name)]
    if missing:
        raise VaultError(f"secrets.provider is vault but {' and '.join(missing)} not set in the environment")
    return hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"], timeout=10)


def read_kv2(client: hvac.Client, mount: str, path: str, keys: Mapping[str, str]) -> dict[str, str]:
    """Read ``mount``/``path`` (KV v2) and return ``{env name: value}`` for ``keys`` (env → property)."""
    where = f"{client.url} {mount}/{path}"
    try:
        response = client.secrets.kv.v2.read_secret_version(
            path=path, mount_point=mount, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        raise VaultError(f"vault: no secret at {where}") from None
    except hvac.exceptions.Forbidden:
        raise VaultError(f"vault: permission denied reading {where} (check VAULT_TOKEN's policy)") from None
    except hvac.exceptions.VaultError as exc:
        raise VaultError(f"vault: reading {where} failed: {type(exc).__name__}") from None
    except requests.exceptions.RequestException as exc:
        raise VaultError(f"vault: cannot reach {client.url}: {type(exc).__name__}") from None
    data = response.get("data", {}).get("data") or {}
    missing = sorted(prop for prop in keys.values() if prop not in data)
    if missing:
        noun = "property" if len(missing) == 1 else "properties"
        raise VaultError(f"vault: {where} has no {noun} {', '.join(missing)}")
    values = {env: data[prop] for env, prop in keys.items()}
    bad = sorted(env for env, value in values.items() if not isinstance(value, str))
    if bad:
        raise VaultError(f"vault: {where}: values for {', '.join(bad)} must be strings")
    return values
