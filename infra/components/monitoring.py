"""Monitoring: the ServiceMonitors that scrape the worker and the job API, the PrometheusRule,
(``autoscaling.adapterConfig``) prometheus-adapter's config serving the queue depth, and
(``monitoring.dashboard``) the Grafana dashboard as a ConfigMap for the Grafana sidecar.

The manifests are :mod:`infra.manifests.observability.monitors`' and :mod:`infra.manifests.scaling.adapter`'s;
this component declares them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from infra.components.declare import child_options, declare
from infra.config.model import StackConfig
from infra.config.release_marks import read_marks
from infra.errors import HistoryError
from infra.manifests.common import API_NAME, selector_labels
from infra.manifests.job_api import api_labels, api_selector
from infra.manifests.observability.dashboard import config_map as dashboard_config_map
from infra.manifests.observability.monitors import prometheus_rule, service_monitor
from infra.manifests.scaling.adapter import config_map as adapter_config_map
from worker import constants as c


@dataclass(frozen=True)
class MonitoringArgs:
    """Inputs of :class:`Monitoring`."""

    config: StackConfig
    instance: str
    object_name: str
    labels: dict[str, str]


class Monitoring(pulumi.ComponentResource):
    """ServiceMonitors (worker, API) + PrometheusRule (+ the adapter's and the dashboard's ConfigMaps,
    when declared)."""

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
        # The stack's release history (releases/<stack>.jsonl, beside the program) marks each release.
        try:
            releases = read_marks(Path.cwd(), args.instance)
        except HistoryError as exc:  # a RunError: the engine prints the message alone, no traceback
            raise pulumi.RunError(str(exc)) from None
        dashboard = dashboard_config_map(
            cfg, name=f"{args.object_name}-dashboard", labels=args.labels, releases=releases
        )
        if dashboard is not None:
            declare(f"{name}-dashboard", dashboard, child)
            outputs["dashboard"] = f"{dashboard['metadata']['namespace']}/{dashboard['metadata']['name']}"
        # Each alert once (an SLO's page and ticket share a name), recording rules left out.
        alerts = list(
            dict.fromkeys(r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r)
        )
        self.register_outputs({**outputs, "alerts": alerts})
