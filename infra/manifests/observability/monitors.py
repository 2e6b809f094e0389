"""The Prometheus Operator objects: a ServiceMonitor per scraped Service, and the PrometheusRule.

The worker serves ``/metrics`` on its own metrics port; the job API serves it on
its HTTP port (``worker/api/instrumentation.py``). Each has its own Service with its own
``app.kubernetes.io/name``, so each gets its own ServiceMonitor whose selector
matches that Service only (and Prometheus' ``job`` label stays the Service name).
"""

from __future__ import annotations

from infra.config.model import StackConfig
from infra.manifests.common import Manifest, metadata
from infra.manifests.observability.alerts import rule_groups
from worker import constants as c


def service_monitor(
    cfg: StackConfig, *, name: str, selector: dict[str, str], port: str, labels: dict[str, str]
) -> Manifest:
    """Scrape every pod behind the Services matching ``selector`` on the named ``port``."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(name, cfg.namespace, {**labels, **cfg.monitoring.service_monitor_labels}),
        "spec": {
            "selector": {"matchLabels": selector},
            "namespaceSelector": {"matchNames": [cfg.namespace]},
            "endpoints": [
                {
                    "port": port,
                    "path": c.METRICS_PATH,
                    "interval": cfg.monitoring.scrape_interval,
                    "scheme": "http",
                }
            ],
        },
    }


def prometheus_rule(cfg: StackConfig, *, name: str, labels: dict[str, str]) -> Manifest:
    """The alert rules as a PrometheusRule (picked up by the same Prometheus as the ServiceMonitor)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(name, cfg.namespace, {**labels, **cfg.monitoring.service_monitor_labels}),
        "spec": {"groups": rule_groups(cfg)},
    }
