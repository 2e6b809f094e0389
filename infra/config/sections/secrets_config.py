"""The stack config's ``secrets`` section (where the secret env vars come from, and the SecretStore
the stack may declare), ``secretValues`` (secret env values held in a local stack's own file) and
``redisCa`` (the CA of Redis's TLS certificate)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, field_validator, model_validator

from infra.config.base_model import Model, Secret, cross_field
from infra.config.fields.durations import check_duration
from infra.config.fields.identifiers import check_dns_label
from worker.constants import ENV_REDIS_URL, SECRET_ENV_VARS

#: The stack key of secret env values kept in the stack file as Pulumi secrets, encrypted by the
#: stack's secrets provider: ``secretValues: {PREVIEW_API_TOKENS: {secure: …}}``, written with
#: ``pulumi config set --secret --path secretValues.<ENV> …``. Only a stack of the local cluster
#: (``cluster.identity: local``) may use it: the demo needs no Vault; real clusters keep theirs.
SECRET_VALUES_KEY = "secretValues"


class RedisCa(Model):
    """``redisCa``: a ConfigMap in the stack's namespace holding the CA that signed Redis's TLS cert.

    Its ``key`` is mounted read-only at ``REDIS_CA_PATH`` in every worker, API and sweep pod;
    REDIS_URL names it with ``?ssl_ca_certs=`` (docs/redis-failover.md). A CA is no secret.
    """

    config_map: str
    key: str = "ca.crt"

    _name = field_validator("config_map")(check_dns_label)

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not re.fullmatch(r"[-._a-zA-Z0-9]{1,253}", v):
            raise ValueError(f"must be a ConfigMap key (letters, digits, '-', '_', '.'), got {v!r}")
        return v


class VaultStore(Model):
    """A ``SecretStore`` the stack declares in its own namespace (``secrets.store``).

    ESO logs in to Vault's Kubernetes auth method at ``authMount`` with ``role``, as the
    stack's ServiceAccount ``preview-worker-secrets`` (which has no RBAC of its own); the
    Vault role binds to exactly that ServiceAccount and namespace (see docs/secrets.md).
    """

    server: str
    auth_mount: str = "kubernetes"
    role: str = "preview-worker"

    @field_validator("server")
    @classmethod
    def _server(cls, v: str) -> str:
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?", v):
            raise ValueError(f"must be Vault's http(s)://host[:port], got {v!r}")
        return v.rstrip("/")

    @field_validator("auth_mount", "role")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}", v) or ".." in v:
            raise ValueError(f"must be a Vault path segment (letters, digits, . _ - /), got {v!r}")
        return v


class Secrets(Model):
    """Where the worker's secret env vars come from.

    ``keys`` maps a secret env var of the worker (e.g. ``REDIS_URL``) to a
    property of the KV v2 secret at ``mount``/``path``. ``vault`` reads them at
    deploy time (hvac); ``external-secrets`` declares an ExternalSecret so the
    values never pass through Pulumi.
    """

    provider: Literal["vault", "external-secrets"] = "external-secrets"
    mount: str = "secret"
    path: str = "mobius/preview-worker"
    keys: dict[str, str] = Field(default_factory=dict)
    store_name: str = "vault"
    store_kind: Literal["ClusterSecretStore", "SecretStore"] = "ClusterSecretStore"
    refresh_interval: str = "1h"
    store: VaultStore | None = None

    _refresh = field_validator("refresh_interval")(check_duration)

    @model_validator(mode="after")
    def _own_store(self) -> Secrets:
        if self.store is None:
            return self
        if self.provider != "external-secrets":
            raise cross_field(("store", "is the External Secrets Operator's: set provider external-secrets"))
        if self.store_kind != "SecretStore":
            raise cross_field(("storeKind", "must be SecretStore when secrets.store declares it"))
        return self

    @field_validator("keys")
    @classmethod
    def _known_env(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - SECRET_ENV_VARS)
        if unknown:
            known = ", ".join(sorted(SECRET_ENV_VARS))
            raise ValueError(f"{', '.join(unknown)} is not a secret env var of the worker (known: {known})")
        return v


def secret_values(v: object) -> object:
    """``secretValues`` as ``{env var: Secret}``: each a worker secret env var, each a Pulumi secret.

    ``REDIS_URL`` has its own key (``redisUrl``), so it is not accepted here. Whether the stack may
    use the section at all, and that no env var also has a Vault key, are cross-section rules
    (:func:`infra.config.cross_section.secret_values_problems`).
    """
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ValueError(f"must be a mapping of secret env vars to secrets, got a {type(v).__name__}")
    problems, out = [], {}
    for env, value in v.items():
        if env == ENV_REDIS_URL:
            problems.append((env, "has its own key: set redisUrl instead"))
        elif env not in SECRET_ENV_VARS:
            known = ", ".join(sorted(SECRET_ENV_VARS - {ENV_REDIS_URL}))
            problems.append((str(env), f"is not a secret env var of the worker (known: {known})"))
        elif isinstance(value, Secret):
            out[env] = value
        elif isinstance(value, Mapping) and set(value) == {"secure"} and isinstance(value["secure"], str):
            out[env] = Secret(ciphertext=value["secure"])
        else:
            how = f"`pulumi config set --secret --path {SECRET_VALUES_KEY}.{env} …`"
            problems.append((env, f"must be a secret ({{secure: …}}): set it with {how}"))
    if problems:
        raise cross_field(*problems)
    return out
