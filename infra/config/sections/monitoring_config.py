"""The stack config's ``monitoring`` section: alert thresholds, runbook base URL, where Prometheus lives."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from infra.config.base_model import Model, check_range
from infra.config.fields.durations import check_duration
from infra.config.fields.identifiers import check_dns_label
from infra.config.fields.labels import check_labels


class DashboardConfig(Model):
    """The Grafana dashboard (``infra/manifests/observability/dashboard.py``) as a ConfigMap the
    kube-prometheus-stack Grafana sidecar loads: off unless enabled; it carries ``grafana_dashboard: "1"``
    and ``labels``, in ``namespace`` (the monitoring namespace when unset: where the sidecar looks)."""

    enabled: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    namespace: str | None = None

    @field_validator("namespace")
    @classmethod
    def _ns(cls, v: str | None) -> str | None:
        return None if v is None else check_dns_label(cls, v)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return check_labels(v)


class MonitoringConfig(Model):
    """Alert thresholds, the runbook base URL and where Prometheus lives."""

    namespace: str = "monitoring"
    service_monitor_labels: dict[str, str] = Field(default_factory=lambda: {"release": "prometheus"})
    scrape_interval: str = "30s"
    # The failure-ratio page of a stack without an availability SLO (with one, its burn rate pages).
    failure_ratio: float = 0.05
    canary_failure_margin: float = 0.02
    backlog_jobs: int = 100
    dlq_growth: int = 0
    duration_p95_seconds: float = 30.0
    api_error_ratio: float = 0.05
    api_enqueue_p95_seconds: float = 0.5
    alert_for: str = "10m"
    # Where each alert's runbook_url points (<base>/<AlertName>.md). No default: a stack names its
    # own copy of docs/runbooks (the committed stacks' value is marked `# example`).
    runbook_base_url: str
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)

    _ns = field_validator("namespace")(check_dns_label)
    _durations = field_validator("scrape_interval", "alert_for")(check_duration)
    _ratio = field_validator("failure_ratio", "canary_failure_margin", "api_error_ratio")(check_range(0, 1))
    _backlog = field_validator("backlog_jobs")(check_range(1, 10_000_000))
    _dlq = field_validator("dlq_growth")(check_range(0, 10_000_000))
    _p95 = field_validator("duration_p95_seconds", "api_enqueue_p95_seconds")(check_range(0.001, 86_400))

    @field_validator("service_monitor_labels")
    @classmethod
    def _monitor_labels(cls, v: dict[str, str]) -> dict[str, str]:
        return check_labels(v)  # they go on the ServiceMonitors and PrometheusRules as labels

    @field_validator("runbook_base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
            raise ValueError(f"must be an http(s) URL, got {v[:80]!r}")
        return v.rstrip("/")
