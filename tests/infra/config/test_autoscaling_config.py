"""``autoscaling.provider``: the prometheus-adapter and KEDA modes, and the keys each allows."""

from __future__ import annotations

from typing import Any

import pytest
from test_model import minimal, problems

from infra.config.model import parse_config

KEDA = {"prometheusUrl": "http://prometheus-operated.monitoring.svc:9090"}


@pytest.mark.parametrize(
    ("autoscaling", "expected"),
    [
        (
            {"provider": "keda", "queueDepthTarget": 10},
            ["autoscaling.keda: required when provider is keda (prometheusUrl at least)"],
        ),
        (
            {"provider": "keda", "keda": KEDA},
            ["autoscaling.queueDepthTarget: required when provider is keda"],
        ),
        (
            {"keda": KEDA, "queueDepthTarget": 10},
            ["autoscaling.keda: set only with provider: keda"],
        ),
        (
            {"provider": "keda", "keda": KEDA, "queueDepthTarget": 10, "adapterConfig": {}},
            ["autoscaling.adapterConfig: is prometheus-adapter's; remove it with provider keda"],
        ),
        (
            {"provider": "hpa"},
            ["autoscaling.provider: must be one of 'prometheus-adapter' or 'keda', got 'hpa'"],
        ),
        (
            {"provider": "keda", "queueDepthTarget": 10, "keda": {"prometheusUrl": "http://u:p@prom:9090"}},
            ["autoscaling.keda.prometheusUrl: must not carry credentials"],
        ),
        (
            {"provider": "keda", "queueDepthTarget": 10, "keda": {"prometheusUrl": "prom:9090"}},
            [
                "autoscaling.keda.prometheusUrl: must be Prometheus's http(s)://host[:port][/path], "
                "got 'prom:9090'"
            ],
        ),
        (
            {"provider": "keda", "queueDepthTarget": 10, "keda": {**KEDA, "pollingIntervalSeconds": 0}},
            ["autoscaling.keda.pollingIntervalSeconds: must be between 1 and 3600, got 0"],
        ),
        (
            {"provider": "keda", "queueDepthTarget": 10, "keda": {**KEDA, "activationThreshold": -1}},
            ["autoscaling.keda.activationThreshold: must be between 0 and 100000, got -1"],
        ),
        (
            {"provider": "keda", "queueDepthTarget": 10, "keda": {**KEDA, "scaleToZero": "sometimes"}},
            ["autoscaling.keda.scaleToZero: must be true or false, got 'sometimes'"],
        ),
    ],
)
def test_each_mistake_names_its_key(autoscaling: dict[str, Any], expected: list[str]) -> None:
    assert problems(minimal(autoscaling=autoscaling)) == expected


def test_keda_defaults() -> None:
    cfg = parse_config(minimal(autoscaling={"provider": "keda", "queueDepthTarget": 10, "keda": KEDA}))
    keda = cfg.autoscaling.keda
    assert keda is not None
    assert (keda.scale_to_zero, keda.activation_threshold, keda.polling_interval_seconds) == (False, 0, 15)
    assert keda.cooldown_period_seconds == 300
    assert parse_config(minimal()).autoscaling.provider == "prometheus-adapter"
