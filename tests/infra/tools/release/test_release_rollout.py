"""Progressive rollout against a real Prometheus server scraping a loopback exporter."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pytest
from release_promkit import Profile, PromServer, steady
from release_testkit import Result, Run, digest, git, merge

from infra.config.model import load_stack_file
from infra.errors import ConfigError, PrometheusError
from infra.tools.release import branches, history, rollout
from infra.tools.release.analysis import RolloutConfig, analyze, load_rollout_config
from infra.tools.release.promapi import Prometheus
from infra.tools.release.rollout import RolloutPlan
from infra.tools.release.stackfile import StackFile

CANARY = digest("c")
HEALTHY = steady(canary_ok=20.0, canary_failed=0.1)
BAD_CANARY = steady(canary_ok=10.0, canary_failed=10.0)
WINDOW = "3s"


def switch(prometheus: PromServer, profile: Profile) -> None:
    """Set the traffic and let one whole analysis window pass, so it sees only this profile."""
    prometheus.traffic.set(profile)
    time.sleep(3.6)


def start_canary(run: Run) -> None:
    assert run("canary", "--stack", "prod", "--image", CANARY, "--weight", "10").code == 0


def roll_out(run: Run, prometheus: PromServer) -> Result:
    """``release rollout`` of the prod canary in steps 25, 50, 100, one analysis window each."""
    steps = ("--steps", "25,50,100", "--interval", WINDOW)
    return run("rollout", "--stack", "prod", *steps, "--prometheus", prometheus.url)


def test_healthy_canary_rolls_out_and_becomes_stable(repo: Path, run: Run, prometheus: PromServer) -> None:
    start_canary(run)
    switch(prometheus, HEALTHY)
    result = roll_out(run, prometheus)
    assert result.code == 0, result.out + result.err
    assert "rollout: step 1 healthy" in result.out and "rollout: step 2 healthy" in result.out
    assert "rollout: COMPLETE — the canary image is stable" in result.out
    config = load_stack_file(repo / "Pulumi.prod.yaml")
    assert (config.image, config.canary.weight, config.canary.image) == (CANARY, 0, None)
    entries = history.read(repo, "prod")
    assert [(e.action, e.after.canary_weight) for e in entries] == [
        ("canary", 10),
        ("rollout-step", 25),
        ("rollout-step", 50),
        ("rollout-complete", 0),
    ]
    measured = re.search(r"analysis at 50%: canary_jobs=([\d.]+), canary_failure_ratio=([\d.]+)", result.out)
    assert measured is not None, result.out
    assert float(measured.group(1)) > 40 and float(measured.group(2)) < 0.01


def test_failing_canary_aborts_and_rolls_back(repo: Path, run: Run, prometheus: PromServer) -> None:
    stable = load_stack_file(repo / "Pulumi.prod.yaml").image
    start_canary(run)
    switch(prometheus, BAD_CANARY)
    result = roll_out(run, prometheus)
    assert result.code == 1
    why = re.search(
        r"rollout: ABORTED at 25%: canary failure ratio (0\.\d+) "
        r"is worse than stable (0\.\d+) \+ margin 0\.01",
        result.out,
    )
    assert why is not None, result.out
    assert 0.4 < float(why.group(1)) < 0.6 and float(why.group(2)) < 0.01
    # An aborted rollout exits 1, so the fixture does not merge it; its pull request merges here.
    assert git(repo, "branch", "--show-current").strip() == "main"  # the checkout stayed on main
    merge(repo, branches.rollout_branch("prod", CANARY))
    config = load_stack_file(repo / "Pulumi.prod.yaml")
    assert (config.image, config.canary.weight, config.canary.image) == (stable, 0, None)
    last = history.read(repo, "prod")[-1]
    assert last.action == "rollout-abort" and last.reason is not None
    assert last.reason.startswith("rollout aborted at 25%: canary failure ratio 0.")
    assert "50%" not in "".join(e.action + str(e.after.canary_weight) for e in history.read(repo, "prod"))


def test_rollout_json_is_one_document_with_each_step_it_wrote(run: Run, prometheus: PromServer) -> None:
    """``rollout --json`` (docs/releases.md#json): stdout is exactly one document; the steps go to stderr."""
    start_canary(run)
    switch(prometheus, BAD_CANARY)
    steps = ("--steps", "25,50,100", "--interval", WINDOW)
    result = run("rollout", "--stack", "prod", *steps, "--prometheus", prometheus.url, "--json")
    assert result.code == 1
    doc = json.loads(result.out)
    assert (doc["schema"], doc["command"], doc["exitCode"]) == (1, "rollout", 1)
    assert [r["action"] for r in doc["releases"]] == ["rollout-step", "rollout-abort"]
    assert all(r["stack"] == "prod" and r["branch"] for r in doc["releases"])
    assert "rollout: ABORTED at 25%" in result.err


def test_each_rollout_change_is_applied(repo: Path, run: Run, prometheus: PromServer) -> None:
    """With an applier (the CLI's --apply passes engine.apply), every written release is applied once."""
    stable = load_stack_file(repo / "Pulumi.prod.yaml").image
    start_canary(run)
    switch(prometheus, HEALTHY)
    applied: list[tuple[str, int, str | None]] = []

    def apply(stack: str) -> None:
        state = StackFile(repo / f"Pulumi.{stack}.yaml").state()
        applied.append((stack, state.canary_weight, state.image))

    plan = RolloutPlan.build("prod", load_rollout_config(repo / "Pulumi.prod.yaml"), [30, 100], WINDOW)
    with Prometheus(prometheus.url) as prom:
        assert rollout.run(repo, plan, prom, apply=apply, out=io.StringIO())
    # One step and the completion: each written release is applied right after it is written.
    assert applied == [("prod", 30, stable), ("prod", 0, CANARY)]


def analysis(prometheus: PromServer, config: RolloutConfig | None = None) -> list[str]:
    with Prometheus(prometheus.url) as prom:
        return analyze(prom, config or RolloutConfig(failure_margin=0.02, max_dlq_growth=0), WINDOW).reasons


def test_idle_canary_fails_the_processed_jobs_check(prometheus: PromServer) -> None:
    switch(prometheus, steady(canary_ok=0.0, canary_failed=0.0))
    assert analysis(prometheus) == [f"canary processed 0.0 jobs in {WINDOW}, fewer than 20"]


def test_invalid_input_is_not_the_canarys_failure(prometheus: PromServer) -> None:
    """The analysis compares the availability SLI (as the SLO rules and the canary alert do): the
    jobs the canary's producers sent invalid (counted failed and invalid) do not count against it."""
    rates = {**steady(0, 0).rates, ("canary", "completed"): 20.0, ("canary", "failed"): 10.0}
    switch(prometheus, Profile({**rates, ("canary", "invalid"): 10.0}))
    assert analysis(prometheus) == []
    switch(prometheus, Profile(rates))  # the same failures, now the canary's own
    (reason,) = analysis(prometheus)
    assert reason.startswith("canary failure ratio 0.3") and "worse than stable" in reason


def test_dlq_growth_fails_the_analysis(prometheus: PromServer) -> None:
    switch(prometheus, Profile(HEALTHY.rates, dlq_per_second=4.0))
    (reason,) = analysis(prometheus)
    assert re.fullmatch(rf"DLQ grew by \d+\.\d jobs in {WINDOW}, more than 0", reason), reason


def test_healthy_traffic_passes_every_check(prometheus: PromServer) -> None:
    switch(prometheus, HEALTHY)
    assert analysis(prometheus) == []


def test_queries_come_from_stack_config(repo: Path, prometheus: PromServer) -> None:
    prod = repo / "Pulumi.prod.yaml"
    prod.write_text(
        prod.read_text()
        + "  mobius-preview-worker:rollout:\n"
        + "    minCanaryJobs: 1000000\n"
        + "    failureMargin: 0.5\n"
        + "    queries:\n"
        + "      dlqGrowth: vector(7)\n"
    )
    config = load_rollout_config(prod)
    assert (config.min_canary_jobs, config.failure_margin, config.max_dlq_growth) == (1_000_000, 0.5, 0.0)
    switch(prometheus, HEALTHY)
    reasons = analysis(prometheus, config)
    assert len(reasons) == 2
    assert reasons[0].startswith("canary processed ") and reasons[0].endswith("fewer than 1e+06")
    assert reasons[1] == f"DLQ grew by 7.0 jobs in {WINDOW}, more than 0"


def test_rollout_config_errors_name_the_key(repo: Path) -> None:
    prod = repo / "Pulumi.prod.yaml"
    prod.write_text(
        prod.read_text()
        + "  mobius-preview-worker:rollout:\n"
        + "    steps: [50, 10]\n"
        + "    interval: soon\n"
        + "    queries: {canaryJobs: 'sum($rate)'}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_rollout_config(prod)
    assert err.value.problems == [
        "rollout.steps: weights must increase, got [50, 10]",
        "rollout.interval: must be a duration like 30s, 10m or 1h, got 'soon'",
        "rollout.queries.canaryJobs: only $window may be substituted, got 'rate'",
    ]


def test_unanswerable_queries_fail_closed(prometheus: PromServer) -> None:
    config = RolloutConfig(
        failure_margin=0.02, max_dlq_growth=0, queries={"canaryJobs": "sum(rate(x[$window])"}
    )
    (reason,) = analysis(prometheus, config)
    assert reason.startswith("analysis query failed: query 'sum(rate(x[3s])' failed: ")
    with (
        Prometheus(f"http://127.0.0.1:{_closed_port()}") as prom,
        pytest.raises(PrometheusError, match="cannot reach"),
    ):
        prom.query("up")


def test_rollout_refuses_without_a_canary_or_with_bad_steps(run: Run, prometheus: PromServer) -> None:
    result = run("rollout", "--stack", "prod", "--interval", WINDOW, "--prometheus", prometheus.url)
    assert result.code == 1 and "Pulumi.prod.yaml has no canary image to roll out" in result.err
    result = run("rollout", "--stack", "prod", "--steps", "50,25", "--prometheus", prometheus.url)
    assert result.code == 1 and "--steps: weights must increase, got [50, 25]" in result.err
    result = run("rollout", "--stack", "prod", "--interval", "10x", "--prometheus", prometheus.url)
    assert result.code == 1 and "--interval: must be a duration like 30s, 10m or 1h, got '10x'" in result.err


def _closed_port() -> int:
    from tests.servers import free_port

    return free_port()
