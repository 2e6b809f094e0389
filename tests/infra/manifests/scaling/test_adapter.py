"""prometheus-adapter's rule: the committed file is current and the selector is scoped."""

from __future__ import annotations

import yaml

from infra.config.model import StackConfig
from infra.manifests.scaling import adapter, autoscaling
from worker import constants as c


def test_committed_adapter_config_is_current() -> None:
    assert adapter.CONFIG_FILE.read_text() == adapter.render(), (
        "run `python -m infra.manifests.scaling.adapter`"
    )


def test_rule_takes_the_max_per_namespace_and_queue_never_the_sum() -> None:
    rule = adapter.external_rule()
    assert rule["metricsQuery"].startswith("max(")
    assert rule["resources"]["overrides"] == {c.LABEL_NAMESPACE: {"resource": "namespace"}}
    assert f"{c.LABEL_QUEUE}!=" in rule["seriesQuery"]


def dev(**overrides: object) -> StackConfig:
    """The committed dev stack's config, with top-level keys replaced."""
    raw = yaml.safe_load((adapter.REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    config = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("mobius-preview-worker:")}
    return StackConfig.model_validate({**config, **overrides})


def test_hpa_selector_names_the_stacks_queue() -> None:
    cfg = dev(worker={"queueName": "q1"})
    assert autoscaling.queue_selector(cfg) == {c.LABEL_STATE: "waiting", c.LABEL_QUEUE: "q1"}


def test_config_map_only_when_declared() -> None:
    assert adapter.config_map(dev()) is None
    declared = adapter.config_map(dev(autoscaling={"adapterConfig": {"namespace": "mon"}}))
    assert declared is not None and declared["metadata"]["namespace"] == "mon"
    assert declared["data"][adapter.CONFIG_KEY] == adapter.render()
