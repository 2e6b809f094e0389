"""The worker's secret objects and mounts, as plain manifests (``secrets.provider`` modes).

* the Pulumi-managed Secret holding ``redisUrl`` and, in ``vault`` mode, the values read from Vault;
* in ``external-secrets`` mode, the ExternalSecret (and, with ``secrets.store``, its SecretStore and
  the ServiceAccount that logs in to Vault), whose Secret the pods mount as files;
* the ``redisCa`` ConfigMap mounted at ``REDIS_CA_PATH``.

:class:`infra.components.secrets.WorkerSecrets` declares them.
"""

from __future__ import annotations

from typing import Any

from infra.config.model import StackConfig
from infra.manifests.common import APP_NAME, Manifest, metadata
from infra.manifests.pod import SecretFiles
from worker.constants import ENV_SECRETS_DIR, REDIS_CA_PATH

ENV_SECRET_NAME = f"{APP_NAME}-env"
VAULT_SECRET_NAME = f"{APP_NAME}-vault"
#: Where the operator's Secret is mounted as files (``PREVIEW_SECRETS_DIR``), read-only.
SECRETS_MOUNT_PATH = "/var/run/secrets/mobius-preview"
REDIS_CA_VOLUME = "redis-ca"
SECRETS_VOLUME = "vault-secrets"
#: The identity ESO logs in to Vault as (``secrets.store``): no RBAC, no pod mounts its token.
STORE_SERVICE_ACCOUNT = f"{APP_NAME}-secrets"


def external_secret(cfg: StackConfig, labels: dict[str, str]) -> Manifest:
    """The ExternalSecret for ``secrets.keys`` (ESO's store holds the KV mount)."""
    s = cfg.secrets
    return {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": metadata(VAULT_SECRET_NAME, cfg.namespace, labels),
        "spec": {
            "refreshInterval": s.refresh_interval,
            "secretStoreRef": {"name": s.store_name, "kind": s.store_kind},
            "target": {"name": VAULT_SECRET_NAME, "creationPolicy": "Owner"},
            "data": [
                {"secretKey": env, "remoteRef": {"key": s.path, "property": prop}}
                for env, prop in sorted(s.keys.items())
            ],
        },
    }


def secret_store(cfg: StackConfig, labels: dict[str, str]) -> list[Manifest]:
    """``secrets.store``'s SecretStore and the ServiceAccount it logs in to Vault as (else nothing)."""
    s, store = cfg.secrets, cfg.secrets.store
    if store is None:
        return []
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(STORE_SERVICE_ACCOUNT, cfg.namespace, labels),
        "automountServiceAccountToken": False,
    }
    vault = {
        "server": store.server,
        "path": s.mount,
        "version": "v2",
        "auth": {
            "kubernetes": {
                "mountPath": store.auth_mount,
                "role": store.role,
                "serviceAccountRef": {"name": STORE_SERVICE_ACCOUNT},
            }
        },
    }
    return [
        account,
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "SecretStore",
            "metadata": metadata(s.store_name, cfg.namespace, labels),
            "spec": {"provider": {"vault": vault}},
        },
    ]


def vault_files() -> SecretFiles:
    """The operator's Secret as files: re-read on rotation, where env vars from it never change.

    Owner and group read only (the pod's fsGroup is the worker's group); the kubelet swaps the
    files atomically when the operator updates the Secret.
    """
    volume = {"name": SECRETS_VOLUME, "secret": {"secretName": VAULT_SECRET_NAME, "defaultMode": 0o440}}
    mount = {"name": SECRETS_VOLUME, "mountPath": SECRETS_MOUNT_PATH, "readOnly": True}
    return SecretFiles([volume], [mount], [{"name": ENV_SECRETS_DIR, "value": SECRETS_MOUNT_PATH}])


def with_redis_ca(files: SecretFiles, cfg: StackConfig) -> SecretFiles:
    """``files`` plus the ``redisCa`` ConfigMap's key at ``REDIS_CA_PATH`` (read-only), when set."""
    ca = cfg.redis_ca
    if ca is None:
        return files
    folder, name = REDIS_CA_PATH.rsplit("/", 1)
    volume = {
        "name": REDIS_CA_VOLUME,
        "configMap": {"name": ca.config_map, "items": [{"key": ca.key, "path": name}]},
    }
    mount = {"name": REDIS_CA_VOLUME, "mountPath": folder, "readOnly": True}
    return SecretFiles([*files.volumes, volume], [*files.mounts, mount], files.env)


def env_secret(cfg: StackConfig, labels: dict[str, str], values: dict[str, Any]) -> Manifest:
    """The Pulumi-managed Secret of env vars (``values`` may be Pulumi secret Outputs)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(ENV_SECRET_NAME, cfg.namespace, labels),
        "type": "Opaque",
        "stringData": values,
    }
