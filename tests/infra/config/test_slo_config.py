"""``slos``: defaults, bounds, errors naming the key; the threshold is one of the worker's buckets."""

from __future__ import annotations

from typing import Any

import pytest
from test_model import minimal, problems

from infra.config.model import parse_config
from worker.constants import JOB_TURNAROUND_BUCKETS


def test_no_slos_by_default_and_defaults_when_declared() -> None:
    assert parse_config(minimal()).slos.availability is None
    slos = parse_config(minimal(slos={"availability": {}, "latency": {}})).slos
    assert slos.availability is not None and (slos.availability.target, slos.availability.window) == (
        0.995,
        "30d",
    )
    assert slos.latency is not None and slos.latency.threshold_seconds == 60
    assert slos.latency.threshold_seconds in JOB_TURNAROUND_BUCKETS  # the default is one the worker counts


@pytest.mark.parametrize(
    ("slos", "expected"),
    [
        (
            {"availability": {"target": 99.5}},
            ["slos.availability.target: must be between 0.95 and 0.9999, got 99.5"],
        ),
        ({"latency": {"target": 0.9}}, ["slos.latency.target: must be between 0.95 and 0.9999, got 0.9"]),
        ({"availability": {"window": "7d"}}, ["slos.availability.window: must be one of 28d, 30d, got '7d'"]),
        (
            {"latency": {"thresholdSeconds": 45}},
            [
                "slos.latency.thresholdSeconds: must be one of the turnaround buckets "
                "(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600), got 45.0"
            ],
        ),
        ({"errors": {}}, ["slos.errors: unknown key"]),
        ({"latency": {"treshold": 60}}, ["slos.latency.treshold: unknown key"]),
    ],
)
def test_bad_slos_name_the_key(slos: dict[str, Any], expected: list[str]) -> None:
    assert problems(minimal(slos=slos)) == expected
