"""The SLO rules under ``promtool test rules``: a fast burn pages within minutes, a slow burn opens
a ticket and pages nobody, a short blip pages nobody, an idle queue never pages; the error budget
left follows the burn. Rules from the prod stack file (availability 99.5 %, latency 99 % in 60 s)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_alerts import promtool

from infra.config.model import load_stack_file
from infra.manifests.observability import panels, slo_rules
from infra.manifests.observability.alerts import rule_groups
from infra.tools.snapshot.harness import ROOT
from worker import constants as c

CFG = load_stack_file(ROOT / "Pulumi.prod.yaml")
NS = CFG.namespace
AVAILABILITY = "PreviewAvailabilityBudgetBurn"
LATENCY = "PreviewLatencyBudgetBurn"
assert CFG.slos.availability is not None and CFG.slos.availability.target == 0.995
assert CFG.slos.latency is not None and CFG.slos.latency.threshold_seconds == 60

#: Six good hours before each burn, so the 6h windows are full (promtool's time is what limits it).
BASE = 360
#: Minutes of traffic: (good jobs per minute, bad jobs per minute), one entry per minute.
Traffic = Sequence[tuple[float, float]]


def steady(minutes: int, good: float, bad: float = 0.0) -> list[tuple[float, float]]:
    return [(good, bad)] * minutes


def counter(name: str, per_minute: Sequence[float], **labels: str) -> dict[str, str]:
    """A counter series that grows by ``per_minute[i]`` in minute i (one sample a minute)."""
    total, values = 0.0, ["0"]
    for n in per_minute:
        total += n
        values.append(f"{total:g}")
    sel = ",".join(f'{k}="{v}"' for k, v in {"namespace": NS, "pod": "w-0", **labels}.items())
    return {"series": f"{name}{{{sel}}}", "values": " ".join(values)}


def outcome_series(traffic: Traffic, invalid: Sequence[float] | None = None) -> list[dict[str, str]]:
    """The worker's outcome counters: good jobs complete, bad ones fail; invalid ones fail as well.

    As the worker counts them, each with its ``reason``: the failures split into a render error's
    series and an invalid job's, so every rule must sum over the reason label.
    """
    invalid = invalid or [0.0] * len(traffic)
    out, stable, none = c.METRIC_JOB_OUTCOMES, c.TRACK_STABLE, c.REASON_NONE
    return [
        counter(out, [g for g, _ in traffic], track=stable, outcome="completed", reason=none),
        counter(out, [b for _, b in traffic], track=stable, outcome="failed", reason=c.REASON_RENDER),
        counter(out, invalid, track=stable, outcome="failed", reason=c.REASON_INVALID),
        counter(out, invalid, track=stable, outcome=c.INVALID_OUTCOME, reason=c.REASON_INVALID),
        counter(out, [0.0] * len(traffic), track=stable, outcome="dryrun", reason=none),
    ]


def turnaround_series(traffic: Traffic) -> list[dict[str, str]]:
    """The turnaround histogram: good jobs end within the 60 s threshold, bad ones after it."""
    name = c.METRIC_JOB_TURNAROUND
    within = [g for g, _ in traffic]
    every = [g + b for g, b in traffic]
    return [
        counter(f"{name}_bucket", within, track="stable", le="60.0"),
        counter(f"{name}_bucket", every, track="stable", le="+Inf"),
        counter(f"{name}_count", every, track="stable"),
    ]


def labels(slo: str, severity: str) -> dict[str, str]:
    return {"severity": severity, "service": "preview-worker", "slo": slo, "namespace": NS}


PAGE_A = labels(slo_rules.SLO_AVAILABILITY, slo_rules.SEVERITY_PAGE)
TICKET_A = labels(slo_rules.SLO_AVAILABILITY, slo_rules.SEVERITY_TICKET)
PAGE_L = labels(slo_rules.SLO_LATENCY, slo_rules.SEVERITY_PAGE)
TICKET_L = labels(slo_rules.SLO_LATENCY, slo_rules.SEVERITY_TICKET)


def check(
    tmp_path: Path,
    series: list[dict[str, str]],
    expect: list[tuple[str, str, list[dict[str, str]]]],
    exprs: Sequence[dict[str, Any]] = (),
) -> subprocess.CompletedProcess[str]:
    """Run promtool on the prod rules; ``expect`` is (eval time, alert, the alerts firing then)."""
    groups = rule_groups(CFG)
    for group in groups:  # annotations are checked by `check rules`; these tests check expressions
        group["rules"] = [{k: v for k, v in r.items() if k != "annotations"} for r in group["rules"]]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    test = {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": f} for f in firing]}
            for at, alert, firing in expect
        ],
        "promql_expr_test": list(exprs),
    }
    doc = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(doc))
    return subprocess.run(
        [promtool(), "test", "rules", str(tmp_path / "test.yaml")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def passes(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_a_fast_burn_pages_within_minutes(tmp_path: Path) -> None:
    # Six good hours, then every job fails: 1h at 14.4x of a 0.5 % budget is 7.2 % of the hour.
    traffic = steady(BASE, 60) + steady(20, 0, 60)
    result = check(
        tmp_path,
        outcome_series(traffic) + turnaround_series(steady(BASE + 20, 60)),
        [
            (f"{BASE + 1}m", AVAILABILITY, []),  # one bad minute: not yet 7.2 % of the hour
            # Paged within 6 minutes; the 3d/6h ticket too (its 3d window holds only these six hours).
            (f"{BASE + 6}m", AVAILABILITY, [PAGE_A, TICKET_A]),
            (f"{BASE + 6}m", LATENCY, []),  # every job that ended, ended fast
        ],
    )
    passes(result)


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The harness can fail: the same fast burn, expected quiet."""
    traffic = steady(60, 60) + steady(20, 0, 60)
    result = check(tmp_path, outcome_series(traffic), [("70m", AVAILABILITY, [])])
    assert result.returncode == 1 and AVAILABILITY in result.stdout + result.stderr


def test_a_slow_burn_opens_a_ticket_and_pages_nobody(tmp_path: Path) -> None:
    # 2 % of jobs keep failing: 4x the budget, over the 3x ticket, under the 6x and 14.4x pages.
    traffic = steady(300, 49, 1)
    result = check(
        tmp_path,
        outcome_series(traffic),
        [("2h", AVAILABILITY, [TICKET_A]), ("5h", AVAILABILITY, [TICKET_A])],
    )
    passes(result)


def test_a_short_blip_pages_nobody(tmp_path: Path) -> None:
    # Two minutes at half failures after six good hours: loud in the 5m window, small in the long ones.
    traffic = steady(360, 60) + steady(2, 30, 30) + steady(60, 60)
    times = ("362m", "365m", "380m", "420m")
    result = check(tmp_path, outcome_series(traffic), [(t, AVAILABILITY, []) for t in times])
    passes(result)


def test_invalid_input_burns_no_budget(tmp_path: Path) -> None:
    # Producers send garbage (counted failed and invalid): the service is not at fault.
    traffic = steady(60, 60)
    result = check(tmp_path, outcome_series(traffic, invalid=[60.0] * 60), [("50m", AVAILABILITY, [])])
    passes(result)


def test_an_idle_queue_never_pages(tmp_path: Path) -> None:
    # The worker exports every series at zero; no job means 0/0: no ratio, no alert, no budget spent.
    idle = steady(130, 0)
    result = check(
        tmp_path,
        outcome_series(idle) + turnaround_series(idle),
        [(t, alert, []) for t in ("10m", "1h", "2h") for alert in (AVAILABILITY, LATENCY)],
    )
    passes(result)


def test_slow_jobs_page_on_the_latency_slo(tmp_path: Path) -> None:
    # Every job ends, but after the 60 s threshold: 1h at 14.4x of a 1 % budget is 14.4 %.
    traffic = steady(BASE, 60) + steady(20, 0, 60)
    result = check(
        tmp_path,
        outcome_series(steady(BASE + 20, 60)) + turnaround_series(traffic),
        [(f"{BASE + 10}m", LATENCY, [PAGE_L, TICKET_L]), (f"{BASE + 10}m", AVAILABILITY, [])],
    )
    passes(result)


def budget_left(value: float) -> list[dict[str, Any]]:
    """The availability SLO's error budget left at 2h, rounded to 0.01 (what a dashboard reads)."""
    remaining = f'{slo_rules.ERROR_BUDGET_REMAINING}{{slo="{slo_rules.SLO_AVAILABILITY}"}}'
    return [{"expr": f"round({remaining}, 0.01)", "eval_time": "2h",
             "exp_samples": [{"labels": _sel(TICKET_A), "value": value}]}]  # fmt: skip


def test_error_budget_remaining_follows_the_burn(tmp_path: Path) -> None:
    # Half the budget's rate (0.25 % failing) leaves half of it. The failures are jobs the
    # housekeeping sweep dead-lettered (BullMQ failed them after too many stalls): counted failed
    # and dlq, so they burn the budget like any failure.
    traffic = steady(130, 399, 1)
    swept = counter(c.METRIC_JOB_OUTCOMES, [1.0] * 130, track=c.TRACK_STABLE, outcome="dlq")
    passes(check(tmp_path, [*outcome_series(traffic), swept], [], budget_left(0.5)))


def test_reruns_after_an_outage_count_each_job_once_and_burn_no_budget(tmp_path: Path) -> None:
    # Issue 30, item 6: every job's first attempt lost its lock (unrecorded) and its rerun found the
    # stored artifacts (completed once, and reused): neither extra outcome enters the SLI.
    traffic = steady(130, 60)
    extra = [
        counter(c.METRIC_JOB_OUTCOMES, [60.0] * 130, track=c.TRACK_STABLE, outcome=outcome)
        for outcome in (c.REUSED_OUTCOME, c.UNRECORDED_OUTCOME, "retried")
    ]
    assert not {c.REUSED_OUTCOME, c.UNRECORDED_OUTCOME} & set(c.FINISHED_OUTCOMES)
    passes(check(tmp_path, [*outcome_series(traffic), *extra], [("2h", AVAILABILITY, [])], budget_left(1.0)))


def _sel(alert_labels: dict[str, str]) -> str:
    keep = {k: v for k, v in alert_labels.items() if k != "severity"}
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(keep.items())) + "}"


@pytest.mark.parametrize(
    ("period", "factors"), [("30d", (14.4, 6, 3, 1)), ("28d", (13.44, 5.6, 2.8, 0.933333))]
)
def test_burn_factors_are_the_workbooks(period: str, factors: tuple[float, ...]) -> None:
    assert tuple(w.factor(period) for w in slo_rules.BURN_WINDOWS) == factors
    assert [(w.long, w.short) for w in slo_rules.BURN_WINDOWS] == [
        ("1h", "5m"),
        ("6h", "30m"),
        ("1d", "2h"),
        ("3d", "6h"),
    ]


def test_a_stack_without_slos_keeps_the_failure_threshold() -> None:
    bare = CFG.model_copy(update={"slos": type(CFG.slos)()})
    alerts = {r["alert"] for g in rule_groups(bare) for r in g["rules"] if "alert" in r}
    assert "PreviewWorkerHighFailureRate" in alerts and AVAILABILITY not in alerts
    records = {r["record"] for g in rule_groups(bare) for r in g["rules"] if "record" in r}
    assert records == {slo_rules.track_sli_record()}  # the canary comparison needs it regardless
    with_slos = {r["alert"] for g in rule_groups(CFG) for r in g["rules"] if "alert" in r}
    assert "PreviewWorkerHighFailureRate" not in with_slos and {AVAILABILITY, LATENCY} <= with_slos


def test_each_runbook_opens_a_panel_and_each_threshold_says_why() -> None:
    """Burn rates page; every other alert's runbook justifies its threshold, and every runbook names
    the dashboard panel (a declared title) to open first."""
    bare = CFG.model_copy(update={"slos": type(CFG.slos)()})
    rules = [r for cfg in (CFG, bare) for g in rule_groups(cfg) for r in g["rules"] if "alert" in r]
    assert rules
    for rule in rules:
        panel = rule["annotations"]["dashboard_panel"]
        assert panel in panels.PANELS, rule["alert"]
        text = (ROOT / "docs" / "runbooks" / f"{rule['alert']}.md").read_text()
        assert f'**Open first**: dashboard panel "{panel}"' in text, rule["alert"]
        burn = rule["alert"] in (AVAILABILITY, LATENCY)
        assert ("**Why a threshold, not a burn rate**" in text) is not burn, rule["alert"]


def test_the_rollout_analysis_compares_the_recorded_sli() -> None:
    """``release rollout``'s default canary query is the per-track recording rule's expression, for
    one track, over the step interval: the canary alert and the rollout judge the same SLI."""
    from string import Template

    from infra.config.sections.rollout_policy import Queries

    (rule,) = [
        r for g in rule_groups(CFG) for r in g["rules"] if r.get("record") == slo_rules.track_sli_record()
    ]
    for track in c.TRACKS:
        query = getattr(Queries(), f"{track}_failure_ratio")
        as_recorded = rule["expr"].replace(f'namespace="{NS}"', f'track="{track}"').replace(" by (track)", "")
        assert Template(query).substitute(window=slo_rules.TRACK_SLI_WINDOW) == as_recorded
