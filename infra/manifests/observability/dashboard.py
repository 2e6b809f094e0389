"""The preview worker's Grafana dashboard, built with grafana-foundation-sdk from the names the project
declares once: metric and label names (``worker/constants.py``), the SLO series
(:mod:`.slo_rules`), the shared PromQL (``infra/promql.py``) and the panel titles the runbooks name
(:mod:`.panels`).

:func:`dashboard` returns plain JSON data (a dict); the stack declares it as a ConfigMap for the
Grafana sidecar (:func:`config_map`), and ``deploy/grafana/preview-worker.json`` is a committed copy
(``python -m infra.manifests.observability.dashboard --write`` regenerates it). Every query reads the
template variables ``$namespace`` and ``$queue``; :func:`queries` lists them per panel, so a test
runs each against a real Prometheus.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus as gp
from grafana_foundation_sdk.builders import stat as gs
from grafana_foundation_sdk.builders import timeseries as gt
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from infra.config.model import StackConfig
from infra.config.release_marks import ReleaseMark
from infra.manifests.common import Manifest, metadata
from infra.manifests.observability import panels as p
from infra.manifests.observability.slo_rules import ERROR_BUDGET_REMAINING, LABEL_SLO
from worker import constants as c

UID: Final = "mobius-preview-worker"
TITLE: Final = "Preview worker"
FILE: Final = "preview-worker.json"
COMMITTED: Final = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / FILE
#: The kube-prometheus-stack Grafana sidecar picks up ConfigMaps with this label (its default).
SIDECAR_LABEL: Final = {"grafana_dashboard": "1"}
DATASOURCE: Final = "datasource"
NAMESPACE: Final = "namespace"
QUEUE: Final = "queue"
WINDOW: Final = "$__rate_interval"

_NS = f'{c.LABEL_NAMESPACE}=~"${NAMESPACE}"'
_Q = f'{c.LABEL_QUEUE}=~"${QUEUE}"'
_T = c.LABEL_TRACK
_HIST_BUCKET = "_bucket"


def _rate(metric: str, matchers: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{matchers}}}[{WINDOW}]))"


def _quantile(q: float, metric: str, matchers: str, by: str) -> str:
    return f"histogram_quantile({q:g}, {_rate(metric + _HIST_BUCKET, matchers, f'le, {by}')})"


def queries(redis_budget_bytes: int = c.REDIS_BUDGET_BYTES_DEFAULT) -> dict[str, list[tuple[str, str]]]:
    """Each panel's ``[(legend, PromQL)]``, keyed by its title (:mod:`.panels`)."""
    finished = f'{_NS},{c.LABEL_OUTCOME}=~"{"|".join(c.FINISHED_OUTCOMES)}"'
    failed = f'{_NS},{c.LABEL_OUTCOME}="{c.FAILED_OUTCOME}"'
    depth = f"{c.METRIC_QUEUE_DEPTH}{{{_NS},{_Q}"
    ready = f"kube_deployment_status_replicas_ready{{{_NS}}}"
    hpa = f"{{{_NS}}}"
    # Prometheus's own scrapes of the API's /metrics are not traffic.
    api = f'{_NS},{c.LABEL_ROUTE}!="{c.METRICS_PATH}"'
    pods = f"count by ({_T}, {c.LABEL_RELEASE}) ({c.METRIC_JOBS_IN_FLIGHT}{{{_NS}}})"
    used = f"max({c.METRIC_REDIS_MEMORY_USED}{{{_NS}}})"
    return {
        p.JOBS_BY_OUTCOME: [
            (
                f"{{{{{_T}}}}} {{{{{c.LABEL_OUTCOME}}}}}",
                _rate(c.METRIC_JOB_OUTCOMES, _NS, f"{_T}, {c.LABEL_OUTCOME}"),
            )
        ],
        p.FAILURE_RATIO: [
            (
                f"{{{{{_T}}}}}",
                f"{_rate(c.METRIC_JOB_OUTCOMES, failed, _T)} / {_rate(c.METRIC_JOB_OUTCOMES, finished, _T)}",
            )
        ],
        p.JOB_DURATION: [
            (f"{{{{{_T}}}}} p{round(q * 100)}", _quantile(q, c.METRIC_JOB_DURATION, _NS, _T))
            for q in (0.5, 0.95, 0.99)
        ],
        p.QUEUE_DEPTH: [
            # Every pod reports the same depth: max, never sum (worker/constants.py).
            (
                f"{{{{{c.LABEL_STATE}}}}}",
                f'max by ({c.LABEL_STATE}) ({depth},{c.LABEL_STATE}!="{c.STATE_DLQ}"}})',
            ),
            # The per-pod target times the pods there are: the depth the current pods are sized
            # for. Not the desired replicas: an HPA that cannot read its metric reports 0 desired
            # (seen with kube-state-metrics on the local cluster), and the line would drop to 0
            # exactly when the autoscaler is in trouble.
            (
                "autoscaler target",
                "max(kube_horizontalpodautoscaler_spec_target_metric"
                f'{{{_NS},metric_target_type="average"}})'
                f" * sum(kube_horizontalpodautoscaler_status_current_replicas{hpa})",
            ),
        ],
        p.PODS: [
            ("{{deployment}} ready", f"sum by (deployment) ({ready})"),
            ("{{deployment}} desired", f"sum by (deployment) (kube_deployment_spec_replicas{{{_NS}}})"),
            (f"{{{{{_T}}}}} reporting", f"count by ({_T}) ({c.METRIC_JOBS_IN_FLIGHT}{{{_NS}}})"),
        ],
        p.DLQ: [
            ("dead-lettered", f'max({depth},{c.LABEL_STATE}="{c.STATE_DLQ}"}})'),
            ("growth /h", f'max(delta({depth},{c.LABEL_STATE}="{c.STATE_DLQ}"}}[1h]))'),
            # Every failed job is dead-lettered: this is also the failures by reason (worker/errors.py).
            (
                f"{{{{{_T}}}}} dead-lettered /s: {{{{{c.LABEL_REASON}}}}}",
                _rate(c.METRIC_JOB_OUTCOMES, f'{_NS},{c.LABEL_OUTCOME}="dlq"', f"{_T}, {c.LABEL_REASON}"),
            ),
        ],
        p.REDIS_BUDGET: [
            # The workers' housekeeping reads Redis's INFO memory: the used bytes over the stack's
            # budget, and over Redis's own maxmemory where it has one (0 is no limit: no series).
            ("used / budget", f"{used} / {redis_budget_bytes}"),
            ("used / maxmemory", f"{used} / (max({c.METRIC_REDIS_MAXMEMORY}{{{_NS}}}) > 0)"),
        ],
        p.API_REQUESTS: [
            (
                f"{{{{{_T}}}}} {{{{{c.LABEL_STATUS}}}}}",
                _rate(c.METRIC_API_REQUESTS, api, f"{_T}, {c.LABEL_STATUS}"),
            ),
            (
                f"{{{{{_T}}}}} 4xx/5xx ratio",
                _rate(c.METRIC_API_REQUESTS, api + f',{c.LABEL_STATUS}=~"4..|5.."', _T)
                + f" / {_rate(c.METRIC_API_REQUESTS, api, _T)}",
            ),
            (
                f"{{{{{_T}}}}} 401 /s",
                _rate(c.METRIC_API_REQUESTS, api + f',{c.LABEL_STATUS}="401"', _T),
            ),
            (f"{{{{{_T}}}}} enqueue p95", _quantile(0.95, c.METRIC_API_ENQUEUE_DURATION, api, _T)),
        ],
        p.RELEASE: [
            (f"{{{{{_T}}}}} {{{{{c.LABEL_RELEASE}}}}}", pods),
            (
                "canary weight",
                f'sum(count by ({_T}) ({c.METRIC_JOBS_IN_FLIGHT}{{{_NS},{_T}="{c.TRACK_CANARY}"}}))'
                f" / sum(count by ({_T}) ({c.METRIC_JOBS_IN_FLIGHT}{{{_NS}}}))",
            ),
        ],
        p.ERROR_BUDGET: [
            (f"{{{{{LABEL_SLO}}}}}", f"{ERROR_BUDGET_REMAINING}{{{_NS}}}"),
        ],
    }


_UNITS: Final = {
    p.JOBS_BY_OUTCOME: "reqps",
    p.FAILURE_RATIO: "percentunit",
    p.JOB_DURATION: "s",
    p.QUEUE_DEPTH: "short",
    p.PODS: "short",
    p.DLQ: "short",
    p.REDIS_BUDGET: "percentunit",
    p.API_REQUESTS: "reqps",
    p.RELEASE: "short",
    p.ERROR_BUDGET: "percentunit",
}
_STATS: Final = (p.RELEASE, p.REDIS_BUDGET, p.ERROR_BUDGET)
#: The pods' annotation: a ``release`` label (image digest) seen now that was not seen 5 minutes earlier.
RELEASE_ANNOTATION: Final = (
    f"count by ({c.LABEL_RELEASE}, {_T}) ({c.METRIC_JOBS_IN_FLIGHT}{{{_NS}}})"
    f" unless count by ({c.LABEL_RELEASE}, {_T}) ({c.METRIC_JOBS_IN_FLIGHT}{{{_NS}}} offset 5m)"
)


#: Labels of the history's annotation series, and the annotation's title and text from them.
LABEL_RELEASE_ID: Final = "release_id"
LABEL_ACTION: Final = "action"
#: Grafana's Prometheus annotation fields the SDK's model does not carry (set on the JSON it writes).
HISTORY_FORMAT: Final = {
    "titleFormat": f"{{{{{LABEL_ACTION}}}}} {{{{{LABEL_RELEASE_ID}}}}}",
    "textFormat": f"release {{{{{LABEL_RELEASE_ID}}}}} ({{{{{LABEL_ACTION}}}}}), from the release history",
    "tagKeys": f"{LABEL_ACTION},{LABEL_RELEASE_ID}",
}
HISTORY_ANNOTATION: Final = "Releases (history)"


def history_annotation(marks: Sequence[ReleaseMark]) -> str | None:
    """The release history as an annotation query (None without a history).

    Pure PromQL over ``vector(time())``, no stored series: one series per release, present from its
    time in the history to the next release's, labelled with its ID and action. Grafana puts one
    annotation at the start of each (a region over the release's lifetime), so every release of
    the history is marked at its recorded time, even one older than Prometheus's retention.
    """
    if not marks:
        return None
    parts = []
    for mark, after in zip(marks, [*marks[1:], None], strict=True):
        series = "vector(time())"
        for label, value in ((LABEL_RELEASE_ID, mark.id), (LABEL_ACTION, mark.action)):
            series = f'label_replace({series}, "{label}", {json.dumps(value)}, "", "")'
        parts.append(f"{series} >= {mark.epoch}" + (f" < {after.epoch}" if after else ""))
    return "\nor\n".join(parts)


def _datasource() -> dm.DataSourceRef:
    return dm.DataSourceRef(type_val="prometheus", uid=f"${DATASOURCE}")


def _panel(title: str, targets: list[tuple[str, str]]) -> Any:
    panel: Any = gs.Panel() if title in _STATS else gt.Panel()
    panel = panel.title(title).datasource(_datasource()).unit(_UNITS[title]).height(8).span(12)
    for i, (legend, expr) in enumerate(targets):
        panel = panel.with_target(gp.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i)))
    return panel


def build(
    redis_budget_bytes: int = c.REDIS_BUDGET_BYTES_DEFAULT, releases: Sequence[ReleaseMark] = ()
) -> dm.Dashboard:
    """The dashboard as the SDK's model; ``releases`` (the stack's history) annotate each release."""
    label_values = f"label_values({c.METRIC_QUEUE_DEPTH}, {c.LABEL_NAMESPACE})"
    queue_values = (
        f'label_values({c.METRIC_QUEUE_DEPTH}{{{c.LABEL_NAMESPACE}=~"${NAMESPACE}"}}, {c.LABEL_QUEUE})'
    )
    board = (
        gd.Dashboard(TITLE)
        .uid(UID)
        .tags(["mobius", "preview-worker"])
        .time("now-6h", "now")
        .refresh("30s")
        .with_variable(gd.DatasourceVariable(DATASOURCE).label("Data source").type("prometheus"))
        .with_variable(
            gd.QueryVariable(NAMESPACE)
            .label("Namespace")
            .datasource(_datasource())
            .query(label_values)
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
        .with_variable(
            gd.QueryVariable(QUEUE)
            .label("Queue")
            .datasource(_datasource())
            .query(queue_values)
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
        .annotation(
            gd.AnnotationQuery()
            .name("Releases")
            .datasource(_datasource())
            .enable(True)
            .icon_color("blue")
            .expr(RELEASE_ANNOTATION)
        )
    )
    history = history_annotation(releases)
    if history is not None:
        board = board.annotation(
            gd.AnnotationQuery()
            .name(HISTORY_ANNOTATION)
            .datasource(_datasource())
            .enable(True)
            .icon_color("purple")
            .expr(history)
        )
    for title, targets in queries(redis_budget_bytes).items():
        board = board.with_panel(_panel(title, targets))
    return board.build()


def dashboard(
    redis_budget_bytes: int = c.REDIS_BUDGET_BYTES_DEFAULT, releases: Sequence[ReleaseMark] = ()
) -> dict[str, Any]:
    """The dashboard's JSON model (plain data), as the SDK encodes it, plus the history annotation's
    title and text (Grafana reads them; the SDK's model has no field for them)."""
    data: dict[str, Any] = json.loads(json.dumps(build(redis_budget_bytes, releases), cls=JSONEncoder))
    for annotation in data.get("annotations", {}).get("list", []):
        if annotation["name"] == HISTORY_ANNOTATION:
            annotation.update(HISTORY_FORMAT)
    return data


def render(
    redis_budget_bytes: int = c.REDIS_BUDGET_BYTES_DEFAULT, releases: Sequence[ReleaseMark] = ()
) -> str:
    """The dashboard as the committed file's text (the committed copy has no stack: no history)."""
    return json.dumps(dashboard(redis_budget_bytes, releases), indent=2, sort_keys=True) + "\n"


def config_map(
    cfg: StackConfig, *, name: str, labels: dict[str, str], releases: Sequence[ReleaseMark] = ()
) -> Manifest | None:
    """The dashboard as a ConfigMap the Grafana sidecar loads (``monitoring.dashboard``), or None when
    the stack leaves it off. Its Redis panel divides by the stack's own ``redisBudget``; ``releases``
    are the stack's release history (:func:`infra.config.release_marks.read_marks`)."""
    board = cfg.monitoring.dashboard
    if not board.enabled:
        return None
    namespace = board.namespace or cfg.monitoring.namespace
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(name, namespace, {**labels, **board.labels, **SIDECAR_LABEL}),
        "data": {FILE: render(cfg.redis_budget_bytes, releases)},
    }


def main(argv: list[str]) -> int:
    """``--write`` rewrites the committed copy; ``--check`` exits 1 when it is stale; else print it."""
    text = render()
    if argv == ["--write"]:
        COMMITTED.parent.mkdir(parents=True, exist_ok=True)
        COMMITTED.write_text(text, encoding="utf-8")
        return 0
    if argv == ["--check"]:
        current = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
        if current != text:
            print(f"{COMMITTED} is stale: run python -m infra.manifests.observability.dashboard --write")
            return 1
        return 0
    if argv:
        print("usage: python -m infra.manifests.observability.dashboard [--write | --check]", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
