"""SLO rules: the SLIs' recording rules, the error-budget series and the multiwindow, multi-burn-rate
alerts of the Google SRE Workbook (pure data; tested with promtool and compared with Sloth).

Names and shapes follow Sloth's (``slo:sli_error:ratio_rate<window>``, ``slo:period_error_budget_
remaining:ratio``, one page and one ticket alert per SLO), so its dashboards read them; the labels
are this project's: ``service``, ``slo`` and the stack's ``namespace``, so two stacks sharing a
Prometheus never write the same series. docs/slo.md says what each SLO counts and where these
rules differ from Sloth's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from infra.manifests.common import APP_NAME, Manifest
from infra.manifests.observability import panels
from infra.promql import availability_events, availability_ratio, error_ratio, latency_events
from worker import constants as c

if TYPE_CHECKING:
    from infra.config.model import StackConfig

SLO_AVAILABILITY: Final = "availability"
SLO_LATENCY: Final = "latency"
LABEL_SLO: Final = "slo"
LABEL_SERVICE: Final = "service"
#: Every window an SLI is recorded over (the burn-rate alerts' short and long windows).
SLI_WINDOWS: Final = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
#: The per-track SLI: what the canary alert and ``release rollout``'s analysis compare.
TRACK_SLI_WINDOW: Final = "5m"
RECORDING_GROUP: Final = "preview-worker.slo-recordings"
META_GROUP: Final = "preview-worker.slo-meta"
SEVERITY_PAGE: Final = "critical"
SEVERITY_TICKET: Final = "warning"
#: What the dashboard's "Error budget remaining" reads: 1 a whole budget left, 0 none, below 0 overspent.
ERROR_BUDGET_REMAINING: Final = "slo:period_error_budget_remaining:ratio"
_UNIT_SECONDS: Final = {"m": 60, "h": 3600, "d": 86400}


def duration_seconds(window: str) -> int:
    """A window of these rules (``5m``, ``6h``, ``30d``: one number, one unit) in seconds."""
    return int(window[:-1]) * _UNIT_SECONDS[window[-1]]


def prometheus_duration(window: str) -> str:
    """``window`` as Prometheus prints a duration (and Sloth names its series): ``28d`` is ``4w``."""
    days, unit = window[:-1], window[-1]
    return f"{int(days) // 7}w" if unit == "d" and int(days) % 7 == 0 else window


def sli_record(window: str) -> str:
    """The recorded error ratio of an SLI over ``window``."""
    return f"slo:sli_error:ratio_rate{prometheus_duration(window)}"


def track_sli_record(window: str = TRACK_SLI_WINDOW) -> str:
    """The recorded error ratio of an SLI per track (``track`` label kept)."""
    return f"slo:sli_error_by_track:ratio_rate{window}"


@dataclass(frozen=True)
class BurnWindow:
    """One pair of the scheme: alert when both windows burn faster than ``factor`` x the budget."""

    short: str
    long: str
    budget_percent: int  # the share of the period's budget burnt in ``long`` at that speed
    severity: str

    def factor(self, period: str) -> float:
        """The burn rate that spends ``budget_percent`` of a ``period`` budget in ``long``."""
        speed = self.budget_percent / 100 * duration_seconds(period) / duration_seconds(self.long)
        return round(speed, 6)


#: The SRE Workbook's recommended parameters (14.4x, 6x, 3x and 1x for a 30-day period).
BURN_WINDOWS: Final = (
    BurnWindow("5m", "1h", 2, SEVERITY_PAGE),
    BurnWindow("30m", "6h", 5, SEVERITY_PAGE),
    BurnWindow("2h", "1d", 10, SEVERITY_TICKET),
    BurnWindow("6h", "3d", 10, SEVERITY_TICKET),
)


@dataclass(frozen=True)
class Slo:
    """One declared SLO, ready to render: its SLI's (bad, total) template and its objective."""

    name: str
    alert: str
    panel: str  # the dashboard panel its runbook opens first
    target: float
    period: str
    description: str
    threshold_seconds: float | None = None

    def events(self, sel: str, window: str, by: str = "") -> tuple[str, str]:
        """The SLI's bad and total job rates over ``window``."""
        if self.threshold_seconds is None:
            return availability_events(sel, window, by)
        return latency_events(sel, window, self.threshold_seconds, by)

    @property
    def budget(self) -> float:
        return round(1 - self.target, 10)


def declared(cfg: StackConfig) -> list[Slo]:
    """The stack's SLOs, from ``cfg.slos``."""
    slos: list[Slo] = []
    if (a := cfg.slos.availability) is not None:
        slos.append(
            Slo(
                SLO_AVAILABILITY,
                "PreviewAvailabilityBudgetBurn",
                panels.FAILURE_RATIO,
                a.target,
                a.window,
                f"{a.target:.2%} of finished jobs end completed (invalid input left out)",
            )
        )
    if (lat := cfg.slos.latency) is not None:
        slos.append(
            Slo(
                SLO_LATENCY,
                "PreviewLatencyBudgetBurn",
                panels.QUEUE_DEPTH,
                lat.target,
                lat.window,
                f"{lat.target:.2%} of jobs end well within {lat.threshold_seconds:g}s of their enqueue",
                lat.threshold_seconds,
            )
        )
    return slos


def _labels(cfg: StackConfig, slo: str) -> dict[str, str]:
    return {LABEL_SERVICE: APP_NAME, LABEL_SLO: slo, c.LABEL_NAMESPACE: cfg.namespace}


def _selector(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def availability_by_track(cfg: StackConfig, window: str) -> str:
    """The availability SLI's error ratio per track over ``window``: the per-track recording rule's
    expression, which ``release rollout``'s analysis evaluates over its own step interval."""
    return availability_ratio(f'{c.LABEL_NAMESPACE}="{cfg.namespace}"', window, f" by ({c.LABEL_TRACK})")


def recording_rules(cfg: StackConfig) -> list[Manifest]:
    """Per SLO the error ratio over every window and its period; the per-track availability ratio."""
    sel = f'{c.LABEL_NAMESPACE}="{cfg.namespace}"'
    rules: list[Manifest] = [
        {
            "record": track_sli_record(),
            "expr": availability_by_track(cfg, TRACK_SLI_WINDOW),
            "labels": _labels(cfg, SLO_AVAILABILITY),
        }
    ]
    for slo in declared(cfg):
        labels = _labels(cfg, slo.name)
        rules += [
            {"record": sli_record(w), "expr": error_ratio(slo.events(sel, w)), "labels": labels}
            for w in SLI_WINDOWS
        ]
        # The period's ratio as Sloth records it: the mean of the 5m ratios (a ratio of means would
        # need 30 days of raw samples in every evaluation).
        short = f"{sli_record(SLI_WINDOWS[0])}{_selector(labels)}"
        period = prometheus_duration(slo.period)
        rules.append(
            {
                "record": sli_record(slo.period),
                "expr": f"sum_over_time({short}[{period}])\n/\ncount_over_time({short}[{period}])",
                "labels": labels,
            }
        )
    return rules


def meta_rules(cfg: StackConfig) -> list[Manifest]:
    """Per SLO its objective, budget, burn rates and the error budget left in the period."""
    rules: list[Manifest] = []
    for slo in declared(cfg):
        labels = _labels(cfg, slo.name)
        sel = _selector(labels)
        budget = f"slo:error_budget:ratio{sel}"
        on = f" / on({LABEL_SERVICE}, {LABEL_SLO}, {c.LABEL_NAMESPACE}) group_left\n"
        rules += [
            {"record": "slo:objective:ratio", "expr": f"vector({slo.target:g})", "labels": labels},
            {"record": "slo:error_budget:ratio", "expr": f"vector({slo.budget:g})", "labels": labels},
            {
                "record": "slo:time_period:days",
                "expr": f"vector({duration_seconds(slo.period) // 86400:g})",
                "labels": labels,
            },
            {
                "record": "slo:current_burn_rate:ratio",
                "expr": f"{sli_record(SLI_WINDOWS[0])}{sel}\n{on}{budget}",
                "labels": labels,
            },
            {
                "record": "slo:period_burn_rate:ratio",
                "expr": f"{sli_record(slo.period)}{sel}\n{on}{budget}",
                "labels": labels,
            },
            {
                "record": ERROR_BUDGET_REMAINING,
                "expr": f"1 - slo:period_burn_rate:ratio{sel}",
                "labels": labels,
            },
        ]
    return rules


def burn_expr(cfg: StackConfig, slo: Slo, severity: str) -> str:
    """Sloth's shape: each pair of windows over the factor, the pairs of one severity or-ed (no
    ``max without (sloth_window)``: these series carry no window label, so ``and`` matches as is)."""
    sel = _selector(_labels(cfg, slo.name))
    pairs = [
        "(\n"
        + "\n    and\n".join(
            f"    {sli_record(w)}{sel} > ({bw.factor(slo.period):g} * {slo.budget:g})"
            for w in (bw.short, bw.long)
        )
        + "\n)"
        for bw in BURN_WINDOWS
        if bw.severity == severity
    ]
    return "\nor\n".join(pairs)


def burn_rules(cfg: StackConfig) -> list[Manifest]:
    """A page (1h/5m, 6h/30m) and a ticket (1d/2h, 3d/6h) alert per declared SLO, no ``for``:
    the short window already makes a burn that stopped clear within minutes."""
    base = cfg.monitoring.runbook_base_url
    rules: list[Manifest] = []
    for slo in declared(cfg):
        for severity, kind in ((SEVERITY_PAGE, "page"), (SEVERITY_TICKET, "ticket")):
            rules.append(
                {
                    "alert": slo.alert,
                    "expr": burn_expr(cfg, slo, severity),
                    "labels": {"severity": severity, LABEL_SERVICE: APP_NAME, LABEL_SLO: slo.name},
                    "annotations": {
                        "summary": f"The {slo.name} SLO's error budget burns too fast ({kind})",
                        "description": (
                            f"SLO: {slo.description} over {slo.period}. At this burn rate the "
                            f"{slo.period} budget is spent early; {kind} windows: "
                            + ", ".join(
                                f"{b.long}/{b.short} at {b.factor(slo.period):g}x"
                                for b in BURN_WINDOWS
                                if b.severity == severity
                            )
                            + "."
                        ),
                        "dashboard_panel": slo.panel,
                        "runbook_url": f"{base}/{slo.alert}.md",
                    },
                }
            )
    return rules


def slo_groups(cfg: StackConfig) -> list[Manifest]:
    """The recording groups (the alert group, built in alerts.py, holds the burn-rate alerts)."""
    groups = [{"name": RECORDING_GROUP, "rules": recording_rules(cfg)}]
    if meta := meta_rules(cfg):
        groups.append({"name": META_GROUP, "rules": meta})
    return groups
