"""The worker's secret env vars, in one of two modes (``secrets.provider``).

* ``external-secrets``: an ExternalSecret asks the External Secrets Operator to
  copy the Vault properties into a Secret; the values never pass through Pulumi.
  With ``secrets.store`` the stack also declares that ExternalSecret's SecretStore
  (Vault's Kubernetes auth, logging in as a ServiceAccount of its own).
* ``vault``: the values are read from Vault KV v2 at deploy time (hvac) and
  wrapped as Pulumi secrets, so state holds them encrypted and output masks them.

``redisUrl`` and a local stack's ``secretValues`` (Pulumi secrets in the stack file) go into
the Pulumi-managed Secret in either mode, beside any Vault keys. The manifests are
:mod:`infra.manifests.secret_sources`'s; this component declares them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pulumi

from infra.components.declare import child_options, declare
from infra.config.model import StackConfig
from infra.config.sections.secrets_config import SECRET_VALUES_KEY
from infra.errors import InfraError
from infra.manifests.common import Manifest
from infra.manifests.pod import SecretFiles
from infra.manifests.secret_sources import (
    ENV_SECRET_NAME,
    env_secret,
    external_secret,
    secret_store,
    vault_files,
    with_redis_ca,
)
from worker.constants import ENV_REDIS_URL


def _digest(pairs: list[Any]) -> str:
    return hashlib.sha256(json.dumps(pairs, sort_keys=True).encode()).hexdigest()


def read_vault(cfg: StackConfig) -> dict[str, str]:
    """In ``vault`` mode, the values of ``secrets.keys`` read from Vault now (else nothing).

    Called before any resource is registered, so an unreachable Vault fails the
    deployment the way an invalid config does: cleanly, with nothing half-created.
    """
    s = cfg.secrets
    if s.provider != "vault" or not s.keys:
        return {}
    from infra import vault  # hvac and requests cost 0.12 s to import; only vault mode needs them

    return vault.read_from_env(s.mount, s.path, s.keys)


@dataclass(frozen=True)
class SecretsArgs:
    """Inputs of :class:`WorkerSecrets`; ``vault_values`` come from :func:`read_vault`."""

    config: StackConfig
    labels: dict[str, str]
    vault_values: dict[str, str]


class WorkerSecrets(pulumi.ComponentResource):
    """The Secret(s) the worker's pods read their secret env vars from."""

    env_sources: list[Manifest]
    files: SecretFiles
    checksum: pulumi.Output[str]

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mobius:preview:Secrets", name, None, opts)
        cfg, labels, child = args.config, args.labels, child_options(self, opts)
        values = self._pulumi_values(cfg, args.vault_values)
        self.env_sources, self.files = [], SecretFiles()
        parts: list[pulumi.Output[Any]] = []
        if values:
            names = sorted(values)
            declare(f"{name}-env", env_secret(cfg, labels, dict(values)), child, protect=cfg.protect)
            self.env_sources.append({"secretRef": {"name": ENV_SECRET_NAME}})
            pairs = pulumi.Output.all(*(values[k] for k in names))
            parts.append(pairs.apply(lambda vs: list(zip(names, vs, strict=True))))
        if cfg.secrets.provider == "external-secrets" and cfg.secrets.keys:
            store = [
                declare(f"{name}-{m['kind'].lower()}", m, child, protect=cfg.protect)
                for m in secret_store(cfg, labels)
            ]
            manifest = external_secret(cfg, labels)
            declare(
                f"{name}-external",
                manifest,
                pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=store)),
                protect=cfg.protect,
            )
            self.files = vault_files()
            parts.append(pulumi.Output.from_input(manifest["spec"]))
        self.files = with_redis_ca(self.files, cfg)
        # The pod annotation must not be a secret (Pulumi would then hide the whole Deployment
        # spec). It is a sha256 over all the values together, so it only helps an attacker who
        # can already guess every one of them (a Redis URL with a real password is not guessable).
        self.checksum = pulumi.Output.unsecret(pulumi.Output.all(*parts).apply(_digest))
        self.register_outputs({"envSources": self.env_sources, "checksum": self.checksum})

    @staticmethod
    def _pulumi_values(cfg: StackConfig, vault_values: dict[str, str]) -> dict[str, pulumi.Output[str]]:
        held = {ENV_REDIS_URL: cfg.redis_url} if cfg.redis_url is not None else {}
        values: dict[str, pulumi.Output[str]] = {}
        for env, secret in {**held, **cfg.secret_values}.items():
            if secret.output is None:
                key = "redisUrl" if env == ENV_REDIS_URL else f"{SECRET_VALUES_KEY}.{env}"
                raise InfraError(f"{key}: only its ciphertext is known; use from_pulumi()")
            values[env] = pulumi.Output.secret(secret.output)
        values.update({env: pulumi.Output.secret(value) for env, value in vault_values.items()})
        return values
