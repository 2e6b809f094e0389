"""Reading the worker's secrets from Vault KV v2 at deploy time (``secrets.provider: vault``).

``VAULT_ADDR`` and a credential come from the environment of ``pulumi up``: either
``VAULT_TOKEN``, or an AppRole (``VAULT_ROLE_ID`` and ``VAULT_SECRET_ID``, logging in at
``VAULT_APPROLE_MOUNT``, default ``approle``), which is what a CI job should hold: a
secret id can be short-lived, use-limited and CIDR-bound, and the token it yields is
revoked as soon as the values are read. Every failure becomes a
:class:`~infra.errors.VaultError` that names the address, mount, path or key involved
and never a secret value or credential.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

import hvac
import hvac.exceptions
import requests

from infra.errors import VaultError

ENV_ADDR, ENV_TOKEN = "VAULT_ADDR", "VAULT_TOKEN"
ENV_ROLE_ID, ENV_SECRET_ID, ENV_APPROLE_MOUNT = "VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_APPROLE_MOUNT"
DEFAULT_APPROLE_MOUNT = "approle"


def client_from_env(env: Mapping[str, str] | None = None) -> hvac.Client:
    """An hvac client for ``VAULT_ADDR`` with ``VAULT_TOKEN`` or, instead, an AppRole login."""
    env = os.environ if env is None else env
    approle = [name for name in (ENV_ROLE_ID, ENV_SECRET_ID) if env.get(name)]
    missing = [ENV_ADDR] if not env.get(ENV_ADDR) else []
    if env.get(ENV_TOKEN) and approle:
        raise VaultError(
            f"secrets.provider is vault: set {ENV_TOKEN} or {ENV_ROLE_ID}/{ENV_SECRET_ID}, not both"
        )
    if approle and len(approle) < 2:
        missing += [name for name in (ENV_ROLE_ID, ENV_SECRET_ID) if name not in approle]
    elif not approle and not env.get(ENV_TOKEN):
        missing.append(ENV_TOKEN)
    if missing:
        raise VaultError(f"secrets.provider is vault but {' and '.join(missing)} not set in the environment")
    if not approle:
        return hvac.Client(url=env[ENV_ADDR], token=env[ENV_TOKEN], timeout=10)
    client = hvac.Client(url=env[ENV_ADDR], timeout=10)
    mount = env.get(ENV_APPROLE_MOUNT) or DEFAULT_APPROLE_MOUNT
    where = f"{client.url} auth/{mount}"
    try:
        client.auth.approle.login(env[ENV_ROLE_ID], env[ENV_SECRET_ID], mount_point=mount)
    except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden):
        raise VaultError(
            f"vault: AppRole login at {where} refused (check {ENV_ROLE_ID}/{ENV_SECRET_ID})"
        ) from None
    except hvac.exceptions.VaultError as exc:
        raise VaultError(f"vault: AppRole login at {where} failed: {type(exc).__name__}") from None
    except requests.exceptions.RequestException as exc:
        raise VaultError(f"vault: cannot reach {client.url}: {type(exc).__name__}") from None
    return client


def read_from_env(
    mount: str, path: str, keys: Mapping[str, str], env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """:func:`read_kv2` with the environment's credential; an AppRole's token is revoked after."""
    env = os.environ if env is None else env
    client = client_from_env(env)
    try:
        return read_kv2(client, mount, path, keys)
    finally:
        if not env.get(ENV_TOKEN):  # logged in here: the token has done its one read
            with contextlib.suppress(hvac.exceptions.VaultError, requests.exceptions.RequestException):
                client.auth.token.revoke_self()


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
