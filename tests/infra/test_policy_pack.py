"""The policy pack: each rule with a passing and a failing resource, through the pulumi-policy
objects the engine calls, and every committed stack passing the whole pack."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.tools.snapshot.harness import ProgramRun
from policy.pack import POLICIES

BY_NAME = {p.name: p for p in POLICIES}
DIGEST_IMAGE = "ghcr.io/mobius/preview-worker@sha256:" + "b" * 64
OPTS = PolicyResourceOptions(False, [], False, [], PolicyCustomTimeouts(0, 0, 0), [])


def deployment(**container: Any) -> dict[str, Any]:
    ctr = {
        "name": "worker",
        "image": DIGEST_IMAGE,
        "resources": {
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": "1", "memory": "128Mi"},
        },
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
        **container,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "w", "labels": {"app.kubernetes.io/instance": "prod", "track": "stable"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "w", "track": "stable"}},
                "spec": {"containers": [ctr]},
            }
        },
    }


def run_resource_policy(name: str, props: dict[str, Any]) -> list[str]:
    policy = BY_NAME[name]
    assert isinstance(policy, ResourceValidationPolicy)
    found: list[str] = []
    args = ResourceValidationArgs(
        f"kubernetes:{props['apiVersion']}:{props['kind']}", props, "urn:x", "x", OPTS, None
    )
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def run_stack_policy(
    objects: list[dict[str, Any]], config: dict[str, Any] | None = None, name: str = "production-sizing"
) -> list[str]:
    policy = BY_NAME[name]
    assert isinstance(policy, StackValidationPolicy)
    resources = [
        PolicyResource(
            f"kubernetes:x:{o['kind']}", o, "urn:x", o["metadata"]["name"], OPTS, None, None, [], {}
        )
        for o in objects
    ]
    found: list[str] = []
    policy.validate(StackValidationArgs(resources, config), lambda message, urn=None: found.append(message))
    return found


@pytest.mark.parametrize(
    ("policy", "good", "bad", "message"),
    [
        (
            "images-pinned-by-digest",
            deployment(),
            deployment(image="ghcr.io/mobius/preview-worker:1.0"),
            "container worker: image 'ghcr.io/mobius/preview-worker:1.0' is not pinned by digest"
            " (repository@sha256:<64 hex>)",
        ),
        (
            "resource-limits-set",
            deployment(),
            deployment(resources={"requests": {"cpu": "1", "memory": "1Gi"}}),
            "container worker: no limits for cpu, memory",
        ),
        (
            "run-as-non-root",
            deployment(),
            deployment(securityContext={"runAsUser": 10001}),
            "container worker: runAsNonRoot is not true",
        ),
        (
            "no-secrets-in-configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c"},
                "data": {"PREVIEW_QUEUE_NAME": "q"},
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c"},
                "data": {"REDIS_URL": "redis://r"},
            },
            "key REDIS_URL: looks like a secret; put it in a Secret",
        ),
        (
            "no-secrets-in-configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c"},
                "data": {"URL": "https://cdn.x/a"},
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c"},
                "data": {"URL": "redis://u:pw@r"},
            },
            "key URL: value is a URL with credentials; put it in a Secret",
        ),
        (
            "no-secrets-in-configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c"},
                "data": {"LOG_LEVEL": "info"},
            },
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"API_TOKEN": "x"}},
            "key API_TOKEN: looks like a secret; put it in a Secret",
        ),
    ],
)
def test_resource_rule_passes_and_fails(
    policy: str, good: dict[str, Any], bad: dict[str, Any], message: str
) -> None:
    assert run_resource_policy(policy, good) == []
    assert run_resource_policy(policy, bad) == [message]


def test_root_user_is_refused_even_with_non_root_flag() -> None:
    bad = deployment(securityContext={"runAsNonRoot": True, "runAsUser": 0})
    assert run_resource_policy("run-as-non-root", bad) == ["container worker: runAsUser is 0 (root)"]


def prod_objects(run: ProgramRun) -> list[dict[str, Any]]:
    return copy.deepcopy(run.objects())


def test_production_sizing_passes_and_fails(stack_runs: dict[str, ProgramRun]) -> None:
    good = prod_objects(stack_runs["prod"])
    assert run_stack_policy(good) == []
    no_pdb = [o for o in good if o["kind"] != "PodDisruptionBudget"]
    assert run_stack_policy(no_pdb) == [
        "Deployment preview-worker-api: no PodDisruptionBudget selects its pods",
        "Deployment preview-worker-stable: no PodDisruptionBudget selects its pods",
    ]
    # Each application is sized on its own: the API's pods do not make up for the worker's.
    api_pdb_only = [
        o for o in good if o["kind"] != "PodDisruptionBudget" or o["metadata"]["name"] != "preview-worker"
    ]
    assert run_stack_policy(api_pdb_only) == [
        "Deployment preview-worker-stable: no PodDisruptionBudget selects its pods"
    ]
    one_replica = copy.deepcopy(good)
    for o in one_replica:
        if o["kind"] == "HorizontalPodAutoscaler":
            o["spec"]["minReplicas"] = 1
    assert run_stack_policy(one_replica) == [
        "production runs 1 preview-worker replica(s) at minimum; needs at least 2",
        "production runs 1 preview-worker-api replica(s) at minimum; needs at least 2",
    ]
    worker_only = copy.deepcopy(good)
    for o in worker_only:
        if o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] != "preview-worker-api":
            o["spec"]["minReplicas"] = 1
    assert run_stack_policy(worker_only) == [
        "production runs 1 preview-worker replica(s) at minimum; needs at least 2"
    ]


def test_production_canary_weight_cap(stack_runs: dict[str, ProgramRun]) -> None:
    from infra.tools.snapshot.harness import run_program

    canary = "ghcr.io/mobius/preview-worker@sha256:" + "c" * 64
    at_50 = run_program("prod", overrides={"canary": {"weight": 50, "image": canary}})
    assert run_stack_policy(prod_objects(at_50)) == []
    at_60 = run_program("prod", overrides={"canary": {"weight": 60, "image": canary}})
    assert run_stack_policy(prod_objects(at_60)) == [
        "Deployment preview-worker-canary: canary weight 60 is above 50"
    ]
    # The same objects outside production (staging) are not held to the production rules.
    assert run_stack_policy(prod_objects(at_60), {"productionInstances": ["live"]}) == []


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_committed_stacks_pass_every_policy(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    objects = stack_runs[stack].objects()
    for name, policy in BY_NAME.items():
        if isinstance(policy, ResourceValidationPolicy):
            for obj in objects:
                assert run_resource_policy(name, obj) == [], (name, obj["kind"])
    assert run_stack_policy(objects) == []
    assert run_stack_policy(objects, name="production-slos") == []


def test_the_policy_pack_refuses_prod_without_slos() -> None:
    from infra.tools.snapshot.harness import run_program

    def refused(run: ProgramRun, config: dict[str, Any] | None = None) -> list[str]:
        return run_stack_policy(prod_objects(run), config, name="production-slos")

    no_latency = run_program("prod", overrides={"slos": {"availability": {"target": 0.995}}})
    assert refused(no_latency) == [
        f"production has no {kind} burn-rate alert for the latency SLO "
        "(declare slos.latency in the stack config)"
        for kind in ("page", "ticket")
    ]
    none = run_program("prod", overrides={"slos": {}})
    assert len(refused(none)) == 4
    # Outside production (staging) a stack may declare no SLO.
    assert refused(none, {"productionInstances": ["live"]}) == []


def test_production_counts_a_scaled_objects_floor() -> None:
    from infra.tools.snapshot.harness import run_program

    keda = {"prometheusUrl": "http://prometheus.monitoring.svc:9090"}
    autoscaling = {"provider": "keda", "queueDepthTarget": 50, "keda": keda}
    floor = run_program("prod", overrides={"autoscaling": autoscaling})
    assert run_stack_policy(prod_objects(floor)) == []  # prod's min 4 carried into minReplicaCount
    to_zero = run_program(
        "prod", overrides={"autoscaling": {**autoscaling, "keda": {**keda, "scaleToZero": True}}}
    )
    assert run_stack_policy(prod_objects(to_zero)) == [
        "production runs 0 preview-worker replica(s) at minimum; needs at least 2"
    ]


def run_protection_policy(run: ProgramRun, config: dict[str, Any] | None = None) -> list[str]:
    policy = BY_NAME["production-protection"]
    assert isinstance(policy, StackValidationPolicy)
    resources = []
    for r in run.resources:
        if r.custom and r.type.startswith("kubernetes:"):
            opts = copy.copy(OPTS)
            opts.protect = r.protected
            resources.append(PolicyResource(r.type, r.manifest, "urn:x", r.name, opts, None, None, [], {}))
    found: list[str] = []
    policy.validate(StackValidationArgs(resources, config), lambda message, urn=None: found.append(message))
    return found


def test_prod_protects_what_holds_state_and_nothing_else(stack_runs: dict[str, ProgramRun]) -> None:
    protected = {
        (r.inputs["kind"], r.inputs["metadata"]["name"]) for r in stack_runs["prod"].resources if r.protected
    }
    assert protected == {
        ("Namespace", "preview"),
        ("ServiceAccount", "preview-worker"),
        ("ExternalSecret", "preview-worker-vault"),
    }
    assert run_protection_policy(stack_runs["prod"]) == []
    for stack in ("dev", "staging"):
        assert not any(r.protected for r in stack_runs[stack].resources), stack


def test_the_policy_pack_refuses_an_unprotected_prod_stack() -> None:
    from infra.tools.snapshot.harness import run_program

    bare = run_program("prod", overrides={"protect": False})
    found = run_protection_policy(bare)
    assert "Namespace preview: not protected in production (set protect: true in the stack config)" in found
    assert len(found) == 3
    # Outside production (staging) the same objects need no protection.
    assert run_protection_policy(bare, {"productionInstances": ["live"]}) == []


def test_an_existing_namespace_is_neither_declared_nor_waited_for() -> None:
    from infra.tools.snapshot.harness import run_program

    run = run_program("prod", overrides={"existingNamespace": True})
    assert run.objects("Namespace") == []
    objects = run.objects()
    assert objects and all(o["metadata"]["namespace"] == "preview" for o in objects)
    for deps in run.dependencies.values():
        assert not any(urn.endswith("::preview-worker-namespace") for urn in deps)
    assert run_protection_policy(run) == []  # what is declared is still protected
