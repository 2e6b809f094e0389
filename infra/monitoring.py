"""Monitoring: the ServiceMonitor that scrapes the worker and the PrometheusRule with its alerts.

The job API is not scraped: ``worker/api.py`` serves no ``/metrics`` route, so a
ServiceMonitor endpoint for it would only produce failed scrapes. Its one alert
(:mod:`infra.alerts`) reads kube-state-metrics instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.alerts import rule_groups
from infra.config import StackConfig
from infra.kube import Manifest, child_options, declare, metadata, selector_labels
from worker import constants as c


def service_monitor(cfg: StackConfig, *, name: str, instance: str, labels: dict[str, str]) -> Manifest:
    """Scrape every worker pod behind the Service on the metrics port."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(name, cfg.namespace, {**labels, **cfg.monitoring.service_monitor_labels}),
        "spec": {
            "selector": {"matchLabels": selector_labels(instance)},
            "namespaceSelector": {"matchNames": [cfg.namespace]},
            "endpoints": [
                {
                    "port": c.METRICS_PORT_NAME,
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


@dataclass(frozen=True)
class MonitoringArgs:
    """Inputs of :class:`Monitoring`."""

    config: StackConfig
    instance: str
    object_name: str
    labels: dict[str, str]


class Monitoring(pulumi.ComponentResource):
    """ServiceMonitor + PrometheusRule."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mobius:preview:Monitoring", name, None, opts)
        child = child_options(self, opts)
        cfg = args.config
        sm = service_monitor(cfg, name=args.object_name, instance=args.instance, labels=args.labels)
        rule = prometheus_rule(cfg, name=args.object_name, labels=args.labels)
        declare(f"{name}-servicemonitor", sm, child)
        declare(f"{name}-rules", rule, child)
        alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
        self.register_outputs({"serviceMonitor": args.object_name, "alerts": alerts})
