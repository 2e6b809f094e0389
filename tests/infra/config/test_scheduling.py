"""The ``scheduling`` section: a node selector and tolerations on every pod, bad values named."""

from __future__ import annotations

from typing import Any

import pytest
from test_model import minimal, problems

from infra.config.model import parse_config
from infra.tools.snapshot.harness import run_program

REAL_NODE = {
    "nodeSelector": {"mobius.dev/node": "real"},
    "tolerations": [{"key": "mobius.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}],
}


def test_unset_means_any_node() -> None:
    assert parse_config(minimal()).scheduling.pod_fields() == {}


def test_the_real_nodes_selector_and_toleration_are_kept_as_kubernetes_spells_them() -> None:
    assert parse_config(minimal(scheduling=REAL_NODE)).scheduling.pod_fields() == REAL_NODE


EXISTS, NO_EXEC = {"key": "k", "operator": "Exists"}, {"key": "k", "effect": "NoExecute"}


@pytest.mark.parametrize(
    ("scheduling", "expected"),
    [
        ({"nodeSelector": {"bad key!": "x"}}, "nodeSelector: 'bad key!' is not a Kubernetes label key"),
        ({"nodeSelector": {"pool": "a b"}}, "nodeSelector: the value of 'pool' is not a Kubernetes"),
        ({"tolerations": [{**EXISTS, "value": "x"}]}, "tolerations.0.value: must be unset"),
        ({"tolerations": [{"value": "x"}]}, "tolerations.0.key: is required when operator is Equal"),
        ({"tolerations": [{"key": "k", "operator": "In"}]}, "tolerations.0.operator: must be one of 'Equal'"),
        ({"tolerations": [{"key": "k", "effect": "Never"}]}, "tolerations.0.effect: must be one of"),
        ({"tolerations": [{"key": "k", "value": "a b"}]}, "tolerations.0.value: 'a b' is not a Kubernetes"),
        ({"tolerations": [{"key": "k", "tolerationSeconds": 5}]}, "tolerations.0.tolerationSeconds: applies"),
        (
            {"tolerations": [{**NO_EXEC, "tolerationSeconds": -9}]},
            "tolerations.0.tolerationSeconds: must be ",
        ),
        ({"tolerations": [{"key": "k"}] * 17}, "tolerations: List should have at most 16 items"),
        ({"affinity": {}}, "affinity: unknown key"),
    ],
)
def test_a_bad_scheduling_value_is_refused_naming_the_key(scheduling: dict[str, Any], expected: str) -> None:
    found = problems(minimal(scheduling=scheduling))
    assert len(found) == 1 and found[0].startswith(f"scheduling.{expected}"), found


def test_every_pod_of_the_stack_gets_them() -> None:
    """Both worker tracks, the job API and the DLQ sweep: the real node must take all or none."""
    canary = {"weight": 10, "image": "ghcr.io/mobius/preview-worker@sha256:" + "c" * 64}
    run = run_program("dev", overrides={"scheduling": REAL_NODE, "canary": canary})
    pods = [
        (o["kind"], o["metadata"]["name"], o["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        if o["kind"] == "CronJob"
        else (o["kind"], o["metadata"]["name"], o["spec"]["template"]["spec"])
        for o in run.objects("Deployment") + run.objects("CronJob")
    ]
    assert len(pods) >= 3, [p[:2] for p in pods]
    for kind, name, spec in pods:
        assert spec["nodeSelector"] == REAL_NODE["nodeSelector"], (kind, name)
        assert spec["tolerations"] == REAL_NODE["tolerations"], (kind, name)
    unset = run_program("dev")
    for deployment in unset.objects("Deployment"):
        assert "nodeSelector" not in deployment["spec"]["template"]["spec"]
