"""Metrics: names from constants, track and release on every series, bounded labels, explicit buckets."""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker import constants as c
from worker.metrics import DURATION_BUCKETS, ApiMetrics, Metrics, PassTally, observe_all
from worker.metrics_doc import exposed_name


def samples(m: Metrics | ApiMetrics) -> list[tuple[str, dict[str, str], float]]:
    text = generate_latest(m.registry).decode()
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def test_every_series_has_the_track_and_release_labels() -> None:
    m = Metrics("canary", release="sha256-0123456789ab")
    m.outcome("completed")
    m.job_duration.observe(0.3)
    api = ApiMetrics("canary", release="sha256-0123456789ab")
    api.request("/api/preview/job", "POST", 202)
    api.set_depth({"waiting": 1})
    found = samples(m) + samples(api)
    assert {n for n, _, _ in found} >= {c.METRIC_JOB_OUTCOMES, c.METRIC_API_REQUESTS, c.METRIC_QUEUE_DEPTH}
    assert all(labels.get(c.LABEL_TRACK) == "canary" for _, labels, _ in found)
    assert all(labels.get(c.LABEL_RELEASE) == "sha256-0123456789ab" for _, labels, _ in found)
    assert all(labels[c.LABEL_RELEASE] == c.RELEASE_LOCAL for _, labels, _ in samples(Metrics("stable")))


def test_names_come_from_constants() -> None:
    m = Metrics("stable")
    assert c.METRIC_FETCHING not in {name for name, _, _ in samples(m)}  # only once a fetch was tried
    m.set_fetching(True)
    m.set_concurrency(7)
    names = {name for name, _, _ in samples(m)}
    assert (c.METRIC_CONCURRENCY, 7.0) in {(name, value) for name, _, value in samples(m)}
    for metric in (
        c.METRIC_JOBS_TAKEN,
        c.METRIC_JOB_OUTCOMES,
        c.METRIC_QUEUE_DEPTH,
        c.METRIC_JOBS_IN_FLIGHT,
        c.METRIC_FETCHING,
        c.METRIC_CONCURRENCY,
        c.METRIC_HOUSEKEEPING_ERRORS,
        c.METRIC_HOUSEKEEPING_FAILING,
        c.METRIC_JOB_DURATION + "_bucket",
        c.METRIC_JOB_TURNAROUND + "_bucket",
    ):
        assert metric in names


def test_outcomes_are_counted_once_in_one_series() -> None:
    m = Metrics("stable")
    for outcome in c.OUTCOMES:
        m.outcome(outcome, c.REASON_RENDER)
    values = {(n, labels.get("outcome"), labels.get("reason")): v for n, labels, v in samples(m)}
    counted = {o: values[(c.METRIC_JOB_OUTCOMES, o, c.REASON_RENDER)] for o in c.OUTCOMES}
    assert counted == dict.fromkeys(c.OUTCOMES, 1.0)
    # The reason label is bounded: every series is of a declared outcome and a declared reason.
    assert {(o, r) for n, o, r in values if n == c.METRIC_JOB_OUTCOMES} <= {
        (o, r) for o in c.OUTCOMES for r in c.REASONS
    }
    # No other counter repeats an outcome (the old failures and dry-run counters did).
    counters = {n for n, _, _ in samples(m) if n.endswith("_total")}
    assert counters == {c.METRIC_JOBS_TAKEN, c.METRIC_JOB_OUTCOMES, c.METRIC_HOUSEKEEPING_ERRORS}
    with pytest.raises(ValueError, match="unknown outcome"):
        m.outcome("exploded")
    with pytest.raises(ValueError, match="reason 'exploded'"):
        m.outcome(c.FAILED_OUTCOME, "exploded")


def test_a_pass_tally_applies_every_change_exactly_when_the_pass_ends() -> None:
    """Within a running loop the changes wait for the end of the pass, then all land, exactly; a
    gauge's changes that cancel out leave it as it was; outside a loop a change lands at once."""
    m = Metrics("stable")
    tally = PassTally()

    def value(name: str, outcome: str | None = None) -> float:
        return next(v for n, labels, v in samples(m) if n == name and labels.get("outcome") == outcome)

    async def one_pass() -> tuple[float, float, float]:
        for _ in range(3):
            tally.add(m.jobs_taken)
            tally.add(m.jobs_in_flight)
            tally.add(m.outcome_series(c.GOOD_OUTCOMES[1]))
        tally.add(m.jobs_in_flight, -2)
        during = (
            value(c.METRIC_JOBS_TAKEN),
            value(c.METRIC_JOBS_IN_FLIGHT),
            value(c.METRIC_JOB_OUTCOMES, "dryrun"),
        )
        await asyncio.sleep(0)
        return during

    assert asyncio.run(one_pass()) == (0.0, 0.0, 0.0)
    assert (value(c.METRIC_JOBS_TAKEN), value(c.METRIC_JOBS_IN_FLIGHT)) == (3.0, 1.0)
    assert value(c.METRIC_JOB_OUTCOMES, "dryrun") == 3.0
    tally.add(m.jobs_in_flight, -1)
    assert value(c.METRIC_JOBS_IN_FLIGHT) == 0.0 and not tally.pending


def test_observing_many_values_at_once_gives_what_observing_each_gives() -> None:
    """``observe_all`` (a pass's observations, #34) writes prometheus_client's own fields: the same
    exposition as ``observe`` per value, values on every bound, between them and past the last."""
    rng = random.Random(7)
    values = [*DURATION_BUCKETS, 0.0, 1e-9, 61.0, 1e6, *(rng.uniform(0, 70) for _ in range(500))]
    values += [b * (1 + 1e-12) for b in DURATION_BUCKETS]
    one, many = Metrics("stable"), Metrics("stable")
    for v in values:
        one.job_duration.observe(v)
    observe_all(many.job_duration, values[:300])
    observe_all(many.job_duration, values[300:])
    assert samples(many) == samples(one)
    assert any(n.endswith("_bucket") and labels["le"] == "0.01" and v > 0 for n, labels, v in samples(one))


def test_a_pass_tally_observes_when_the_pass_ends() -> None:
    m = Metrics("stable")
    tally = PassTally()

    def count() -> float:
        return next(v for n, _, v in samples(m) if n == f"{c.METRIC_JOB_DURATION}_count")

    async def one_pass() -> tuple[float, int]:
        for v in (0.2, 0.3, 40.0):
            tally.observe(m.job_duration, v)
        during = count(), len(tally)
        await asyncio.sleep(0)
        return during

    assert asyncio.run(one_pass()) == (0.0, 1)
    assert count() == 3.0 and len(tally) == 0
    tally.observe(m.job_duration, 0.1)  # outside a loop: at once
    assert count() == 4.0


def test_every_name_has_its_process_prefix_and_counters_end_in_total() -> None:
    """The naming scheme: `preview_worker_`/`preview_api_` per process kind, `preview_queue_` for
    the queue both read; `_total` on every counter, `_seconds` on every duration."""
    declared = {v for k, v in vars(c).items() if k.startswith("METRIC_")}
    for kind, metrics in (("worker", Metrics("stable")), ("api", ApiMetrics("stable"))):
        for family in metrics.declared:
            name, (meta,) = exposed_name(family), family.describe()
            assert name.startswith((f"preview_{kind}_", "preview_queue_")), name
            assert name in declared, name  # named in worker/constants.py
            assert name.endswith("_total") == (meta.type == "counter"), name
            if meta.type == "histogram":
                assert name.endswith("_seconds"), name


def test_queue_depth_and_buckets() -> None:
    m = Metrics("stable")
    m.set_depth({"waiting": 3, "dlq": 1})
    depth = {labels["state"]: v for n, labels, v in samples(m) if n == c.METRIC_QUEUE_DEPTH}
    assert depth == {
        "waiting": 3.0,
        "active": 0.0,
        "completed": 0.0,
        "failed": 0.0,
        "delayed": 0.0,
        "dlq": 1.0,
    }
    buckets = [labels["le"] for n, labels, _ in samples(m) if n == c.METRIC_JOB_DURATION + "_bucket"]
    assert buckets == [str(b) for b in DURATION_BUCKETS] + ["+Inf"]
    # The latency SLO's threshold is one of these (infra/config/sections/slo_config.py), so its SLI is exact.
    turnaround = [labels["le"] for n, labels, _ in samples(m) if n == c.METRIC_JOB_TURNAROUND + "_bucket"]
    assert turnaround == [str(b) for b in c.JOB_TURNAROUND_BUCKETS] + ["+Inf"]


def test_every_family_the_registry_holds_is_declared_for_the_doc() -> None:
    m = Metrics("stable")
    registered = set(m.registry._names_to_collectors.values())
    assert registered == set(m.declared)
