"""Monitoring: the ServiceMonitors that scrape the worker and the job API, the PrometheusRule,
and (``autoscaling.adapterConfig``) prometheus-adapter's config serving the queue depth.

The worker serves ``/metrics`` on its own metrics port; the job API serves it on
its HTTP port (``worker/api_metrics.py``). Each has its own Service with its own
``app.kubernetes.io/name``, so each gets its own ServiceMonitor whose selector
matches that Service only (and Prometheus' ``job`` label stays the Service name).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.components.api import api_labels, api_selector
from infra.config.model import StackConfig
from infra.manifests.adapter import config_map as adapter_config_map
from infra.manifests.alerts import rule_groups
from infra.manifests.common import API_NAME, Manifest, child_options, declare, metadata, selector_labels
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


@dataclass(frozen=True)
class MonitoringArgs:
    """Inputs of :class:`Monitoring`."""

    config: StackConfig
    instance: str
    object_name: str
    labels: dict[str, str]


class Monitoring(pulumi.ComponentResource):
    """ServiceMonitors (worker, API) + PrometheusRule (+ the adapter's ConfigMap, when declared)."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mobius:preview:Monitoring", name, None, opts)
        child = child_options(self, opts)
        cfg = args.config
        sm = service_monitor(
            cfg,
            name=args.object_name,
            selector=selector_labels(args.instance),
            port=c.METRICS_PORT_NAME,
            labels=args.labels,
        )
        api_sm = service_monitor(
            cfg,
            name=API_NAME,
            selector=api_selector(args.instance),
            port=c.API_PORT_NAME,
            labels=api_labels(args.instance),
        )
        rule = prometheus_rule(cfg, name=args.object_name, labels=args.labels)
        declare(f"{name}-servicemonitor", sm, child)
        declare(f"{name}-api-servicemonitor", api_sm, child)
        declare(f"{name}-rules", rule, child)
        outputs = {"serviceMonitor": args.object_name, "apiServiceMonitor": API_NAME}
        adapter = adapter_config_map(cfg)
        if adapter is not None:
            declare(f"{name}-adapter-config", adapter, child)
            outputs["adapterConfig"] = f"{adapter['metadata']['namespace']}/{adapter['metadata']['name']}"
        alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
        self.register_outputs({**outputs, "alerts": alerts})
