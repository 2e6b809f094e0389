"""The sections of the stack config (one pydantic model each); assembled in :mod:`infra.config.model`."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from infra.config.rules import (
    Model,
    check_cidr,
    check_dns_label,
    check_duration,
    check_range,
    check_weight,
    cross_field,
    quantity,
    validate_image_ref,
)
from worker.constants import SECRET_ENV_VARS, SOURCE_HOST_PATTERN

#: ``autoscaling.provider``: how the queue depth reaches the scaler.
Provider = Literal["prometheus-adapter", "keda"]
PROVIDER_ADAPTER: Provider = "prometheus-adapter"
PROVIDER_KEDA: Provider = "keda"


class Replicas(Model):
    """Total worker pods across both tracks; the HPA moves between these."""

    min: int = 2
    max: int = 6

    _min = field_validator("min")(check_range(1, 100))
    _max = field_validator("max")(check_range(1, 200))

    @model_validator(mode="after")
    def _ordered(self) -> Replicas:
        if self.max < self.min:
            raise cross_field(("max", f"must be >= replicas.min ({self.min}), got {self.max}"))
        return self


class CpuMemory(Model):
    """A CPU and a memory quantity (Kubernetes notation: ``250m``, ``512Mi``)."""

    cpu: str
    memory: str

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: str) -> str:
        quantity(v, "cpu")
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        quantity(v, "memory")
        return v


class Resources(Model):
    """Requests and limits for the worker container; both are always set."""

    requests: CpuMemory = CpuMemory(cpu="250m", memory="256Mi")
    limits: CpuMemory = CpuMemory(cpu="1", memory="512Mi")

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        bad = [
            (f"requests.{k}", f"must be <= limits.{k} ({lim}), got {req}")
            for k, req, lim in (
                ("cpu", self.requests.cpu, self.limits.cpu),
                ("memory", self.requests.memory, self.limits.memory),
            )
            if quantity(req, k) > quantity(lim, k)
        ]
        if bad:
            raise cross_field(*bad)
        return self


class Canary(Model):
    """The canary track: ``weight`` percent of concurrency slots run ``image``."""

    weight: int = 0
    image: str | None = None

    @field_validator("weight")
    @classmethod
    def _weight(cls, v: int) -> int:
        return check_weight(v)

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        return None if v is None else validate_image_ref(v)

    @model_validator(mode="after")
    def _image_when_weighted(self) -> Canary:
        if self.weight > 0 and self.image is None:
            raise cross_field(("image", f"required when canary.weight > 0 (weight is {self.weight})"))
        return self


class AdapterConfig(Model):
    """Where to declare prometheus-adapter's config (its ``externalRules`` for the queue depth).

    Optional: the same rules ship as ``deploy/prometheus-adapter/config.yaml`` for an
    adapter whose config the platform team owns. A ConfigMap declared here replaces the
    adapter's whole config, so use it only for an adapter that serves these rules alone.
    """

    namespace: str = "monitoring"
    name: str = "prometheus-adapter"

    _names = field_validator("namespace", "name")(check_dns_label)


class Keda(Model):
    """``autoscaling.keda``: how KEDA's operator reads the queue depth (``provider: keda``).

    KEDA queries Prometheus itself (``prometheusUrl``) every ``pollingIntervalSeconds``.
    With ``scaleToZero`` a track with no waiting jobs goes to 0 pods once
    ``cooldownPeriodSeconds`` have passed, and wakes when more than ``activationThreshold``
    jobs wait: the job API's pods (always running) export the depth while no worker does.
    """

    prometheus_url: str
    scale_to_zero: bool = False
    activation_threshold: int = 0
    polling_interval_seconds: int = 15
    cooldown_period_seconds: int = 300

    _activation = field_validator("activation_threshold")(check_range(0, 100_000))
    _polling = field_validator("polling_interval_seconds")(check_range(1, 3600))
    _cooldown = field_validator("cooldown_period_seconds")(check_range(0, 86_400))

    @field_validator("prometheus_url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials")
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"must be Prometheus's http(s)://host[:port][/path], got {v!r}")
        return v.rstrip("/")


class Autoscaling(Model):
    """Per-track autoscaling: CPU (unless ``cpuTarget: null``), and queue depth (waiting jobs per pod).

    ``provider`` says how the queue depth reaches the scaler (docs/autoscaling.md):
    ``prometheus-adapter`` (an HPA per track asking for the External metric
    ``preview_queue_jobs``) or ``keda`` (a ScaledObject per track with a Prometheus
    trigger; KEDA owns the HPA, and may scale a track to zero).
    """

    provider: Provider = PROVIDER_ADAPTER
    cpu_target: int | None = 70
    queue_depth_target: int | None = None
    scale_down_window_seconds: int = 300
    adapter_config: AdapterConfig | None = None
    keda: Keda | None = None

    _cpu = field_validator("cpu_target")(check_range(1, 100))
    _depth = field_validator("queue_depth_target")(check_range(1, 100_000))
    _window = field_validator("scale_down_window_seconds")(check_range(0, 3600))

    @model_validator(mode="after")
    def _some_metric(self) -> Autoscaling:
        if self.cpu_target is None and self.queue_depth_target is None:
            raise cross_field(("cpuTarget", "may be null only when queueDepthTarget is set"))
        problems: list[tuple[str, str]] = []
        if self.provider == PROVIDER_KEDA:
            if self.keda is None:
                problems.append(("keda", "required when provider is keda (prometheusUrl at least)"))
            if self.queue_depth_target is None:
                problems.append(("queueDepthTarget", "required when provider is keda"))
            if self.adapter_config is not None:
                problems.append(("adapterConfig", "is prometheus-adapter's; remove it with provider keda"))
        elif self.keda is not None:
            problems.append(("keda", "set only with provider: keda"))
        if problems:
            raise cross_field(*problems)
        return self


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


class Monitoring(Model):
    """Alert thresholds, the runbook base URL and where Prometheus lives."""

    namespace: str = "monitoring"
    service_monitor_labels: dict[str, str] = Field(default_factory=lambda: {"release": "prometheus"})
    scrape_interval: str = "30s"
    failure_ratio: float = 0.05
    canary_failure_margin: float = 0.02
    backlog_jobs: int = 100
    dlq_growth: int = 0
    duration_p95_seconds: float = 30.0
    api_error_ratio: float = 0.05
    api_enqueue_p95_seconds: float = 0.5
    alert_for: str = "10m"
    runbook_base_url: str = "https://github.com/mobius/preview-worker/blob/main/docs/runbooks"

    _ns = field_validator("namespace")(check_dns_label)
    _durations = field_validator("scrape_interval", "alert_for")(check_duration)
    _ratio = field_validator("failure_ratio", "canary_failure_margin", "api_error_ratio")(check_range(0, 1))
    _backlog = field_validator("backlog_jobs")(check_range(1, 10_000_000))
    _dlq = field_validator("dlq_growth")(check_range(0, 10_000_000))
    _p95 = field_validator("duration_p95_seconds", "api_enqueue_p95_seconds")(check_range(0.001, 86_400))

    @field_validator("runbook_base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("https://", "http://")):
            raise ValueError(f"must be an http(s) URL, got {v!r}")
        return v.rstrip("/")


class Network(Model):
    """Peers of the NetworkPolicies: Redis and the S3 endpoint (by namespace and/or CIDR),
    and the namespace the job API's ingress traffic comes from."""

    redis_port: int = 6379
    # The sentinels' port, when REDIS_URL is redis+sentinel:// (worker/queue/connections.py): egress
    # then opens it too, to the same peers, since the workers ask the sentinels for the master.
    redis_sentinel_port: int | None = None
    redis_namespace: str | None = "redis"
    redis_cidrs: list[str] = Field(default_factory=list)
    dns_namespace: str = "kube-system"
    api_ingress_namespace: str = "ingress-nginx"
    s3_port: int = 443
    s3_namespace: str | None = None
    s3_cidrs: list[str] = Field(default_factory=list)

    _port = field_validator("redis_port", "s3_port", "redis_sentinel_port")(check_range(1, 65535))
    _cidrs = field_validator("redis_cidrs", "s3_cidrs")(check_cidr)
    _ingress = field_validator("api_ingress_namespace")(check_dns_label)

    @model_validator(mode="after")
    def _redis_peer(self) -> Network:
        if self.redis_namespace is None and not self.redis_cidrs:
            raise cross_field(("redisNamespace", "set redisNamespace or redisCidrs so pods can reach Redis"))
        return self


class SourceHost(Model):
    """A host the worker may fetch ``url`` sources from, with the CIDRs it resolves into."""

    host: str
    cidrs: list[str]
    port: int = 443

    _cidrs = field_validator("cidrs")(check_cidr)
    _port = field_validator("port")(check_range(1, 65535))

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not re.fullmatch(SOURCE_HOST_PATTERN, v):  # the worker's own rule for PREVIEW_SOURCE_HOSTS
            raise ValueError(
                f"must be a host name without scheme or port (the port is `port`), got {v[:80]!r}"
            )
        return v
