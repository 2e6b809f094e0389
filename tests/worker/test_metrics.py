"""Metrics: names from constants, a track label on every series, bounded labels, explicit buckets."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker import constants as c
from worker.metrics import DURATION_BUCKETS, Metrics


def samples(m: Metrics) -> list[tuple[str, dict[str, str], float]]:
    text = generate_latest(m.registry).decode()
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def test_every_series_has_the_track_label() -> None:
    m = Metrics("canary")
    m.outcome("completed")
    m.duration.labels("canary").observe(0.3)
    found = samples(m)
    assert found
    assert all(labels.get(c.LABEL_TRACK) == "canary" for _, labels, _ in found)


def test_names_come_from_constants() -> None:
    names = {name for name, _, _ in samples(Metrics("stable"))}
    for metric in (
        c.METRIC_JOB_OUTCOMES,
        c.METRIC_REQUESTS,
        c.METRIC_FAILURES,
        c.METRIC_DRYRUN,
        c.METRIC_QUEUE_DEPTH,
        c.METRIC_ACTIVE_CONSUMERS,
        c.METRIC_JOB_DURATION + "_bucket",
        c.METRIC_JOB_TURNAROUND + "_bucket",
    ):
        assert metric in names


def test_outcomes_and_derived_counters() -> None:
    m = Metrics("stable")
    for outcome in ("completed", "retried", "failed", "dlq", "dryrun", "invalid"):
        m.outcome(outcome)
    values = {(n, labels.get("outcome")): v for n, labels, v in samples(m)}
    assert {o: values[(c.METRIC_JOB_OUTCOMES, o)] for o in c.OUTCOMES} == dict.fromkeys(c.OUTCOMES, 1.0)
    assert values[(c.METRIC_FAILURES, None)] == 2.0  # retried + failed attempts
    assert values[(c.METRIC_DRYRUN, None)] == 1.0
    with pytest.raises(ValueError, match="unknown outcome"):
        m.outcome("exploded")


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
