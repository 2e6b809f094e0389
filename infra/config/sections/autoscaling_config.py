"""The stack config's ``autoscaling`` section: per-track CPU and queue-depth scaling, and how the
queue depth reaches the scaler (prometheus-adapter or KEDA)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import field_validator, model_validator

from infra.config.base_model import Model, check_range, cross_field
from infra.config.fields.identifiers import check_dns_label

#: ``autoscaling.provider``: how the queue depth reaches the scaler.
Provider = Literal["prometheus-adapter", "keda"]
PROVIDER_ADAPTER: Provider = "prometheus-adapter"
PROVIDER_KEDA: Provider = "keda"


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
