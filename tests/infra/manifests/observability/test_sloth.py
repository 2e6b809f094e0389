"""Our SLO rules against Sloth's (``github.com/slok/sloth``, built like the cluster add-ons) for the
same SLOs: the same windows, factors and SLI expressions, and the same values when promtool
evaluates both rule sets on one synthetic series. docs/slo.md lists where the two differ."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_alerts import promtool
from test_slo_rules import BASE, CFG, outcome_series, steady, turnaround_series

from infra.config.model import StackConfig
from infra.manifests.common import APP_NAME
from infra.manifests.observability import slo_rules
from infra.manifests.observability.alerts import rule_groups
from infra.tools.local.toolchain.build import ensure_built

# The first test builds Sloth when it is not cached (about 14 minutes cold); cached, seconds.
pytestmark = pytest.mark.timeout(1800)

SEVERITIES = {"page": slo_rules.SEVERITY_PAGE, "ticket": slo_rules.SEVERITY_TICKET}
#: A burn condition: the recorded window, then the factor and the budget it is compared with.
BURN = re.compile(r"slo:sli_error:ratio_rate(\w+)\{[^}]*\}\s*>\s*\(([0-9.e+-]+)\s*\*\s*([0-9.e+-]+)\)")


def sloth_spec(cfg: StackConfig) -> dict[str, Any]:
    """A stack's SLOs as a Sloth ``prometheus/v1`` spec, from the same SLI queries."""
    sel = f'namespace="{cfg.namespace}"'
    slos = []
    for slo in slo_rules.declared(cfg):
        bad, total = slo.events(sel, "{{.window}}")
        slos.append(
            {
                "name": slo.name,
                "objective": round(slo.target * 100, 6),
                "sli": {"events": {"error_query": bad, "total_query": total}},
                "alerting": {
                    "name": f"Sloth{slo.alert}",
                    "page_alert": {"labels": {"severity": slo_rules.SEVERITY_PAGE}},
                    "ticket_alert": {"labels": {"severity": slo_rules.SEVERITY_TICKET}},
                },
            }
        )
    return {"version": "prometheus/v1", "service": APP_NAME, "slos": slos}


def generate(cfg: StackConfig, work: Path, period: str = "30d") -> list[dict[str, Any]]:
    """``sloth generate`` of ``cfg``'s SLOs over ``period``: its rule groups."""
    (work / "slos.yaml").write_text(yaml.safe_dump(sloth_spec(cfg), sort_keys=False))
    argv = [ensure_built("sloth"), "generate", "--no-log", f"--default-slo-period={period}"]
    argv += ["-i", str(work / "slos.yaml"), "-o", str(work / "rules.yaml")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    groups: list[dict[str, Any]] = yaml.safe_load((work / "rules.yaml").read_text())["groups"]
    return groups


@pytest.fixture(scope="module")
def sloth_groups(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return generate(CFG, tmp_path_factory.mktemp("sloth"))


def flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def ours(cfg: StackConfig = CFG) -> list[dict[str, Any]]:
    return [r for g in rule_groups(cfg) for r in g["rules"]]


def sloth_rules(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for g in groups for r in g["rules"]]


def recorded(rules: list[dict[str, Any]], slo: str, label: str) -> dict[str, str]:
    """``{record name: expr}`` of one SLO's recording rules."""
    return {r["record"]: r["expr"] for r in rules if "record" in r and r["labels"].get(label) == slo}


def burns(rules: list[dict[str, Any]], alert: str) -> dict[str, list[tuple[str, float, float]]]:
    """Per severity kind (page, ticket): each condition's window, factor and budget, in order."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    for r in rules:
        if r.get("alert") == alert:
            kind = next(k for k, sev in SEVERITIES.items() if r["labels"]["severity"] == sev)
            out[kind] = [(w, float(f), float(b)) for w, f, b in BURN.findall(r["expr"])]
    return out


@pytest.mark.parametrize("slo", [slo_rules.SLO_AVAILABILITY, slo_rules.SLO_LATENCY])
def test_same_sli_expressions_over_the_same_windows(sloth_groups: list[dict[str, Any]], slo: str) -> None:
    mine = recorded(ours(), slo, slo_rules.LABEL_SLO)
    theirs = recorded(sloth_rules(sloth_groups), slo, "sloth_slo")
    windows = [slo_rules.sli_record(w) for w in slo_rules.SLI_WINDOWS]
    for name in windows:
        assert flat(mine[name]) == flat(theirs[name]), name
    # The period's ratio: the same mean of the 5m ratios, selected by each generator's own labels.
    period = slo_rules.sli_record("30d")

    def unlabelled(expr: str) -> str:
        """Without selectors and the label lists of ``on()``/``ignoring()`` (each generator's own labels)."""
        return re.sub(r"(on|ignoring)\([^)]*\)", "", re.sub(r"\{[^}]*\}", "", flat(expr)))

    assert unlabelled(mine[period]) == unlabelled(theirs[period])
    # The same series besides, with Sloth's names and expressions: objective, budget, burn rates,
    # budget left (Sloth's budget is 1-0.995 written out, ours the number; its info series we omit).
    assert set(theirs) - set(mine) == {"sloth_slo_info"}
    for name in (
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        slo_rules.ERROR_BUDGET_REMAINING,
    ):
        assert unlabelled(mine[name]) == unlabelled(theirs[name]), name


@pytest.mark.parametrize("slo", slo_rules.declared(CFG), ids=lambda s: s.name)
def test_same_windows_and_factors(sloth_groups: list[dict[str, Any]], slo: slo_rules.Slo) -> None:
    mine, theirs = burns(ours(), slo.alert), burns(sloth_rules(sloth_groups), f"Sloth{slo.alert}")
    assert set(mine) == set(theirs) == {"page", "ticket"}
    for kind in mine:
        assert [w for w, _, _ in mine[kind]] == [w for w, _, _ in theirs[kind]], kind
        for (_, f1, b1), (_, f2, b2) in zip(mine[kind], theirs[kind], strict=True):
            assert f1 == pytest.approx(f2) and b1 == pytest.approx(b2, rel=1e-9), kind
    assert [w for w, _, _ in mine["page"]] == ["5m", "1h", "30m", "6h"]
    assert [f for _, f, _ in mine["page"] + mine["ticket"]][::2] == [14.4, 6, 3, 1]


def test_a_28_day_window_gets_sloths_28_day_factors(tmp_path: Path) -> None:
    slos = CFG.slos.model_validate({"availability": {"window": "28d"}, "latency": {"window": "28d"}})
    cfg = CFG.model_copy(update={"slos": slos})
    theirs = sloth_rules(generate(cfg, tmp_path, "28d"))
    for slo in slo_rules.declared(cfg):
        mine, sloth = burns(ours(cfg), slo.alert), burns(theirs, f"Sloth{slo.alert}")
        assert {k: [(w, pytest.approx(f)) for w, f, _ in v] for k, v in mine.items()} == {
            k: [(w, f) for w, f, _ in v] for k, v in sloth.items()
        }
        # Both name the period as Prometheus prints it: 28d is 4w.
        assert slo_rules.sli_record("28d") == "slo:sli_error:ratio_rate4w"
        mine_period = recorded(ours(cfg), slo.name, slo_rules.LABEL_SLO)["slo:sli_error:ratio_rate4w"]
        assert "[4w]" in mine_period and "slo:sli_error:ratio_rate4w" in recorded(
            theirs, slo.name, "sloth_slo"
        )


def test_same_values_on_the_same_series(sloth_groups: list[dict[str, Any]], tmp_path: Path) -> None:
    """promtool evaluates both rule sets on one fast burn: every shared series agrees at each step."""
    (tmp_path / "ours.yaml").write_text(yaml.safe_dump({"groups": rule_groups(CFG)}))
    (tmp_path / "sloth.yaml").write_text(yaml.safe_dump({"groups": sloth_groups}))
    traffic = steady(BASE, 60) + steady(20, 0, 60) + steady(40, 60)
    slow = steady(BASE, 60) + steady(30, 30, 30) + steady(30, 60)
    # The SLIs only: a series derived from a recorded one (burn rates, budget left) may read the
    # previous step's value in one set and this step's in the other (the order of its groups), so
    # those are compared as expressions above.
    names = [slo_rules.sli_record(w) for w in (*slo_rules.SLI_WINDOWS, "30d")]
    exprs = [
        {
            "expr": f'round({name}{{slo="{slo}"}} - on() {name}{{sloth_slo="{slo}"}}, 1e-9)',
            "eval_time": at,
            "exp_samples": [{"labels": "{}", "value": 0}],  # one each: a missing side gives none
        }
        for name in names
        for slo in (slo_rules.SLO_AVAILABILITY, slo_rules.SLO_LATENCY)
        for at in (f"{BASE + 3}m", f"{BASE + 15}m", f"{BASE + 50}m")
    ]
    test = {
        "interval": "1m",
        "input_series": outcome_series(traffic) + turnaround_series(slow),
        "promql_expr_test": exprs,
    }
    doc = {"rule_files": ["ours.yaml", "sloth.yaml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(doc))
    done = subprocess.run(
        [promtool(), "test", "rules", str(tmp_path / "test.yaml")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
