"""The worker's alert rules, as Prometheus rule groups (pure data, tested with promtool).

Every expression uses the metric names from :mod:`worker.constants` and
scopes to the stack's namespace; per-track alerts keep the ``track`` label.
Queue-depth gauges are reported by every pod, so they are read with ``max``.

The job API's own series (``worker/api/instrumentation.py``, scraped through the API's
ServiceMonitor) give its 5xx ratio and enqueue p95; a third API alert reads
kube-state-metrics (part of any kube-prometheus install): no available API pod,
which is also what happens when every API pod reports Redis down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.manifests.common import APP_NAME, Manifest
from infra.manifests.observability import panels, slo_rules
from infra.promql import RATE_WINDOW, failure_ratio, queue_depth, waiting_jobs
from worker import constants as c

if TYPE_CHECKING:
    from infra.config.model import StackConfig

#: kube-state-metrics' series of a Deployment's ready-for-minReadySeconds pods.
KSM_AVAILABLE = "kube_deployment_status_replicas_available"
GROUP_NAME = "preview-worker.alerts"


@dataclass(frozen=True)
class Alert:
    """One alerting rule."""

    name: str
    expr: str
    severity: str
    summary: str
    description: str
    panel: str  # the dashboard panel to open first (panels.py)


def _api_requests(sel: str) -> str:
    return f"sum(rate({c.METRIC_API_REQUESTS}{{{sel}}}[{RATE_WINDOW}]))"


def alert_list(cfg: StackConfig) -> list[Alert]:
    """The alerts for one stack, thresholds from ``cfg.monitoring``."""
    m, ns = cfg.monitoring, f'namespace="{cfg.namespace}"'
    waiting = waiting_jobs(cfg.namespace)
    dlq = queue_depth(cfg.namespace, c.STATE_DLQ)
    up = f'up{{{ns},job="{APP_NAME}"}}'
    bucket = f"{c.METRIC_JOB_DURATION}_bucket{{{ns}}}"
    api_available = f'{KSM_AVAILABLE}{{{ns},deployment="{APP_NAME}-api"}}'
    server_errors = f'{ns},{c.LABEL_STATUS}=~"5.."'
    api_5xx = f"{_api_requests(server_errors)} / {_api_requests(ns)}"
    enqueue_bucket = f"{c.METRIC_API_ENQUEUE_DURATION}_bucket{{{ns}}}"
    worker_down = f"sum({up}) == 0 or absent({up})"
    unrecorded = f'{ns},{c.LABEL_OUTCOME}="{c.UNRECORDED_OUTCOME}"'
    sli = slo_rules.track_sli_record()
    labels = f'{slo_rules.LABEL_SLO}="{slo_rules.SLO_AVAILABILITY}",{ns}'

    def per_track(track: str) -> str:
        return f'{sli}{{{labels},{c.LABEL_TRACK}="{track}"}}'

    keda = cfg.autoscaling.keda
    if keda is not None and keda.scale_to_zero:  # no worker while nothing waits is KEDA's doing
        worker_down = f"({worker_down}) and on() {waiting} > {keda.activation_threshold}"
    # A stack with an availability SLO pages on its burn rate (slo_rules.py) instead.
    failure_threshold = (
        []
        if cfg.slos.availability is not None
        else [
            Alert(
                "PreviewWorkerHighFailureRate",
                f"{failure_ratio(ns, by=' by (track)')} > {m.failure_ratio:g}",
                "critical",
                "Preview jobs are failing ({{ $labels.track }})",
                f"More than {m.failure_ratio:.0%} of finished preview jobs failed over {RATE_WINDOW} "
                "on track {{ $labels.track }} (now {{ $value | humanizePercentage }}).",
                panels.FAILURE_RATIO,
            ),
        ]
    )
    return [
        *failure_threshold,
        Alert(
            "PreviewQueueBacklogGrowing",
            f"{waiting} > {m.backlog_jobs} and deriv({waiting}[15m:1m]) > 0",
            "warning",
            "Preview queue backlog is growing",
            f"More than {m.backlog_jobs} jobs are waiting and the backlog keeps growing "
            "(now {{ $value }}); the workers cannot keep up.",
            panels.QUEUE_DEPTH,
        ),
        Alert(
            "PreviewWorkerDown",
            worker_down,
            "critical",
            "No preview worker is up",
            f"Prometheus scrapes no healthy preview worker in namespace {cfg.namespace}.",
            panels.PODS,
        ),
        Alert(
            "PreviewNoActiveConsumers",
            f"{waiting} > 0 and sum({c.METRIC_JOBS_IN_FLIGHT}{{{ns}}}) == 0",
            "critical",
            "Jobs are waiting but no worker is processing",
            "{{ $value }} jobs are waiting and no worker has an active job.",
            panels.JOBS_BY_OUTCOME,
        ),
        Alert(
            "PreviewDLQGrowing",
            f"max(delta({dlq}[15m])) > {m.dlq_growth}",
            "warning",
            "Jobs are landing in the dead-letter queue",
            "The dead-letter queue grew by {{ $value }} jobs in 15m; inspect and redrive them.",
            panels.DLQ,
        ),
        Alert(
            "PreviewHousekeepingFailing",
            f"max by (track) ({c.METRIC_HOUSEKEEPING_FAILING}{{{ns}}}) >= 1",
            "warning",
            "Worker housekeeping keeps failing ({{ $labels.track }})",
            f"{c.HOUSEKEEPING_FAILING_ROUNDS} or more housekeeping rounds in a row had an error: the DLQ "
            "may not be trimmed, failed jobs not dead-lettered, or the depth gauges the autoscalers "
            "read not refreshed. The worker log's `step` and `jobId` say which.",
            panels.DLQ,
        ),
        Alert(
            "PreviewJobFinishesUnrecorded",
            f"sum by (track) (increase({c.METRIC_JOB_OUTCOMES}{{{unrecorded}}}[{RATE_WINDOW}])) > 0",
            "warning",
            "Workers keep finishing jobs Redis does not record ({{ $labels.track }})",
            "Jobs finished but Redis refused their result (the job's lock was lost), so each runs again: "
            "the lock expires before the worker renews it (a blocked event loop, a lockMs too short "
            "for the renders) or Redis keeps failing over. Nothing is lost, the work is doubled.",
            panels.JOBS_BY_OUTCOME,
        ),
        Alert(
            "PreviewCanaryFailureRateWorse",
            f"{per_track(c.TRACK_CANARY)}\n- ignoring({c.LABEL_TRACK})\n{per_track(c.TRACK_STABLE)}"
            f"\n> {m.canary_failure_margin:g}",
            "critical",
            "The canary fails more jobs than stable",
            f"The canary's availability SLI error ratio exceeds stable's by more than "
            f"{m.canary_failure_margin:.0%} (by {{{{ $value | humanizePercentage }}}}); abort the canary.",
            panels.FAILURE_RATIO,
        ),
        Alert(
            "PreviewJobDurationP95High",
            f"histogram_quantile(0.95, sum by (track, le) (rate({bucket}[{RATE_WINDOW}])))"
            f" > {m.duration_p95_seconds:g}",
            "warning",
            "Preview jobs are slow ({{ $labels.track }})",
            f"p95 job duration is above {m.duration_p95_seconds:g}s on track {{{{ $labels.track }}}} "
            "(now {{ $value | humanizeDuration }}).",
            panels.JOB_DURATION,
        ),
        Alert(
            "PreviewApiUnavailable",
            f"max({api_available}) == 0",
            "critical",
            "The job API has no available pod",
            f"No pod of Deployment {APP_NAME}-api in namespace {cfg.namespace} is ready: producers "
            "cannot enqueue jobs. Its readiness fails while Redis is unreachable.",
            panels.PODS,
        ),
        Alert(
            "PreviewApiHighErrorRate",
            f"{api_5xx} > {m.api_error_ratio:g}",
            "critical",
            "The job API answers with server errors",
            f"More than {m.api_error_ratio:.0%} of job API requests got a 5xx over {RATE_WINDOW} "
            "(now {{ $value | humanizePercentage }}); 503s mean Redis or the artifact store "
            "is unreachable.",
            panels.API_REQUESTS,
        ),
        Alert(
            "PreviewApiSlowEnqueue",
            f"histogram_quantile(0.95, sum by (le) (rate({enqueue_bucket}[{RATE_WINDOW}])))"
            f" > {m.api_enqueue_p95_seconds:g}",
            "warning",
            "Enqueueing preview jobs is slow",
            f"p95 of POST /api/preview/job is above {m.api_enqueue_p95_seconds:g}s "
            "(now {{ $value | humanizeDuration }}); check Redis latency.",
            panels.API_REQUESTS,
        ),
    ]


def rule_groups(cfg: StackConfig) -> list[Manifest]:
    """The ``groups`` of a Prometheus rule file / PrometheusRule spec."""
    base = cfg.monitoring.runbook_base_url
    rules = [
        {
            "alert": a.name,
            "expr": a.expr,
            "for": cfg.monitoring.alert_for,
            "labels": {"severity": a.severity, "service": APP_NAME},
            "annotations": {
                "summary": a.summary,
                "description": a.description,
                "dashboard_panel": a.panel,
                "runbook_url": f"{base}/{a.name}.md",
            },
        }
        for a in alert_list(cfg)
    ]
    return [*slo_rules.slo_groups(cfg), {"name": GROUP_NAME, "rules": rules + slo_rules.burn_rules(cfg)}]
