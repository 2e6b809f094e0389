"""The dev stack's whole life through the real engine against the local cluster.

``pulumi preview``, ``up``, a second ``preview --expect-no-changes``, drift behind
Pulumi's back repaired by ``up --refresh``, and ``destroy``, with the real CLI, the
Python language host and the Kubernetes provider plugin. What the program declares
(the same code as ``python -m infra snapshot``) is read back from the API server.

The tests of this module share one stack and run in file order: each starts from
the state the one before left.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_kit import ScratchProject, kubectl_json, pulumi_json, pulumi_run, run
from live_kit import available, container, declared, live, mismatches

from infra.config.model import CONFIG_NAMESPACE
from infra.tools.local.cluster.kube import FAKE_NODE
from worker import constants as c

STACK = "dev"
NAMESPACE = "preview-dev"
#: The stack's ``scheduling`` (infra/config/sections/scheduling.py), as a stack names a node pool:
#: the KWOK node's label, and a toleration of the real node's taint (which no KWOK node carries).
SCHEDULING = {
    "nodeSelector": {"type": "kwok"},
    "tolerations": [{"key": "mobius.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}],
}
STABLE = "preview-worker-stable"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def dev(scratch_project: ScratchProject) -> Iterator[tuple[Path, dict[str, str]]]:
    """A project copy with the dev stack initialised in a file backend of this module only."""
    project, environ = scratch_project("engine-dev")
    stack_file = project / f"Pulumi.{STACK}.yaml"
    document = yaml.safe_load(stack_file.read_text())
    document["config"][f"{CONFIG_NAMESPACE}:scheduling"] = SCHEDULING
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))
    pulumi_run(["stack", "init", STACK], environ, project)
    yield project, environ
    pulumi_run(["destroy", "--stack", STACK, "--yes"], environ, project)  # a no-op once the last test ran


def kube_objects(steps: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(kind, name) of every Kubernetes object a preview plans."""
    found = set()
    for step in steps:
        state = step.get("newState") or step.get("oldState") or {}
        if state.get("type", "").startswith("kubernetes:") and state.get("custom"):
            found.add((state["inputs"]["kind"], state["inputs"]["metadata"]["name"]))
    return found


def test_preview_plans_exactly_the_objects_the_program_declares(dev: tuple[Path, dict[str, str]]) -> None:
    project, environ = dev
    plan = pulumi_json(["preview", "--stack", STACK, "--json"], environ, project)
    assert {step["op"] for step in plan["steps"]} == {"create"}
    want = {(m["kind"], m["metadata"]["name"]) for m in declared(project, STACK, environ)}
    assert kube_objects(plan["steps"]) == want
    assert plan["changeSummary"] == {"create": len(plan["steps"])}
    # nothing exists yet: a preview changes nothing on the cluster
    namespaces = {n["metadata"]["name"] for n in kubectl_json(environ, "get", "namespaces")["items"]}
    assert NAMESPACE not in namespaces


def test_up_creates_every_declared_object_as_declared(dev: tuple[Path, dict[str, str]]) -> None:
    project, environ = dev
    pulumi_run(["up", "--stack", STACK, "--yes", "--skip-preview"], environ, project)
    for manifest in declared(project, STACK, environ):
        got = live(environ, manifest)
        if manifest["kind"] == "Secret":  # values are never rendered; the keys must all be there
            assert set(got["data"]) == set(manifest["stringData"])
            continue
        assert mismatches(manifest, got) == [], f"{manifest['kind']}/{manifest['metadata']['name']}"


def test_the_live_workload_is_what_the_stack_file_says(dev: tuple[Path, dict[str, str]]) -> None:
    project, environ = dev
    config = stack_config(project)
    deployments = {
        d["metadata"]["name"]: d
        for d in kubectl_json(environ, "-n", NAMESPACE, "get", "deployments")["items"]
    }
    assert set(deployments) == {STABLE, "preview-worker-api"}  # weight 0: no canary Deployment
    for deployment in deployments.values():
        assert available(deployment), deployment["status"]
        assert container(deployment)["image"] == config["image"]  # the pinned digest, stable and API
    worker = deployments[STABLE]
    assert worker["metadata"]["labels"][c.LABEL_TRACK] == c.TRACK_STABLE
    # The stack's scheduling: on every pod template, and the scheduler placed the pods by it.
    for deployment in deployments.values():
        template = deployment["spec"]["template"]["spec"]
        assert (template["nodeSelector"], template["tolerations"]) == (
            SCHEDULING["nodeSelector"], SCHEDULING["tolerations"],
        )  # fmt: skip
    pods = kubectl_json(environ, "-n", NAMESPACE, "get", "pods")["items"]
    assert pods and all(p["spec"]["nodeName"] == FAKE_NODE for p in pods), [p["spec"] for p in pods]
    assert worker["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == STACK
    probes = container(worker)
    assert probes["livenessProbe"]["httpGet"]["path"] == c.LIVENESS_PATH
    assert probes["readinessProbe"]["httpGet"]["path"] == c.READINESS_PATH
    assert probes["securityContext"]["readOnlyRootFilesystem"] is True
    assert probes["securityContext"]["allowPrivilegeEscalation"] is False
    assert worker["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    # The stack file's cpu and memory, and the render budget's ephemeral-storage (infra.manifests.pod).
    disk = {"ephemeral-storage": "1152Mi"}
    want = {kind: {**config["resources"][kind], **disk} for kind in ("requests", "limits")}
    assert probes["resources"] == want
    hpa = kubectl_json(environ, "-n", NAMESPACE, "get", "hpa", STABLE)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
        config["replicas"]["min"], config["replicas"]["max"],
    )  # fmt: skip
    monitor = kubectl_json(environ, "-n", NAMESPACE, "get", "servicemonitor", "preview-worker")
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("metrics", c.METRICS_PATH)]
    rules = kubectl_json(environ, "-n", NAMESPACE, "get", "prometheusrule", "preview-worker")
    alerts = {rule.get("alert") for group in rules["spec"]["groups"] for rule in group["rules"]}
    # dev declares both SLOs: their burn-rate alerts page instead of a failure-ratio threshold.
    burns = {"PreviewAvailabilityBudgetBurn", "PreviewLatencyBudgetBurn"}
    assert {"PreviewWorkerDown", "PreviewQueueBacklogGrowing", *burns} <= alerts
    assert "PreviewWorkerHighFailureRate" not in alerts
    exprs = [rule["expr"] for group in rules["spec"]["groups"] for rule in group["rules"]]
    assert all(f'namespace="{NAMESPACE}"' in expr for expr in exprs if "preview_worker_" in expr)


def test_the_redis_url_is_live_in_the_secret_and_encrypted_in_the_state(
    dev: tuple[Path, dict[str, str]],
) -> None:
    project, environ = dev
    redis_url = pulumi_run(["config", "get", "redisUrl", "--stack", STACK], environ, project).strip()
    secret = kubectl_json(environ, "-n", NAMESPACE, "get", "secret", "preview-worker-env")
    assert base64.b64decode(secret["data"]["REDIS_URL"]).decode() == redis_url
    state = pulumi_run(["stack", "export", "--stack", STACK], environ, project)
    assert redis_url not in state
    assert base64.b64encode(redis_url.encode()).decode() not in state
    configmaps = kubectl_json(environ, "-n", NAMESPACE, "get", "configmaps")["items"]
    assert not any(redis_url in json.dumps(cm.get("data", {})) for cm in configmaps)


def test_a_second_preview_expects_no_changes(dev: tuple[Path, dict[str, str]]) -> None:
    project, environ = dev
    pulumi_run(["preview", "--stack", STACK, "--expect-no-changes"], environ, project)
    pulumi_run(["preview", "--stack", STACK, "--refresh", "--expect-no-changes"], environ, project)


def test_drift_behind_pulumis_back_is_shown_by_refresh_and_repaired_by_up(
    dev: tuple[Path, dict[str, str]],
) -> None:
    project, environ = dev
    image = stack_config(project)["image"]
    rogue = image.rsplit("@", 1)[0] + "@sha256:" + "e" * 64
    run(["kubectl", "-n", NAMESPACE, "set", "image", f"deployment/{STABLE}", f"worker={rogue}"], environ)
    bounds = '{"spec":{"maxReplicas":7}}'
    run(["kubectl", "-n", NAMESPACE, "patch", "hpa", STABLE, "--type=merge", "-p", bounds], environ)
    plan = pulumi_json(["preview", "--stack", STACK, "--refresh", "--json", "--diff"], environ, project)
    drifted = {
        step["urn"].split("::")[2].rsplit("$", 1)[1]: step for step in plan["steps"] if step["op"] == "update"
    }
    assert set(drifted) == {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    }
    for step in drifted.values():
        assert step["newState"]["inputs"]["metadata"]["name"] == STABLE
    pulumi_run(["up", "--stack", STACK, "--refresh", "--yes", "--skip-preview"], environ, project)
    deployment = kubectl_json(environ, "-n", NAMESPACE, "get", "deployment", STABLE)
    assert container(deployment)["image"] == image
    assert kubectl_json(environ, "-n", NAMESPACE, "get", "hpa", STABLE)["spec"]["maxReplicas"] == 2
    pulumi_run(["preview", "--stack", STACK, "--refresh", "--expect-no-changes"], environ, project)


def test_a_scale_by_hand_or_by_the_hpa_is_not_drift_pulumi_fights(dev: tuple[Path, dict[str, str]]) -> None:
    project, environ = dev
    run(["kubectl", "-n", NAMESPACE, "scale", f"deployment/{STABLE}", "--replicas=2"], environ)
    run(["kubectl", "-n", NAMESPACE, "rollout", "status", f"deployment/{STABLE}", "--timeout=60s"], environ)
    deployment = kubectl_json(environ, "-n", NAMESPACE, "get", "deployment", STABLE)
    assert deployment["status"]["readyReplicas"] == 2
    # the HPA owns spec.replicas; the program never declares it, so neither a plain nor a
    # refreshing preview plans to change it back
    pulumi_run(["preview", "--stack", STACK, "--refresh", "--expect-no-changes"], environ, project)


def test_destroy_removes_everything_and_the_namespace(dev: tuple[Path, dict[str, str]]) -> None:
    project, environ = dev
    pulumi_run(["destroy", "--stack", STACK, "--yes"], environ, project)
    exported = json.loads(pulumi_run(["stack", "export", "--stack", STACK], environ, project))
    assert exported["deployment"].get("resources") in (None, [])
    namespaces = {n["metadata"]["name"] for n in kubectl_json(environ, "get", "namespaces")["items"]}
    assert NAMESPACE not in namespaces


def stack_config(project: Path) -> dict[str, Any]:
    """The dev stack file's config, un-namespaced (``image``, ``replicas``, …)."""
    raw = yaml.safe_load((project / f"Pulumi.{STACK}.yaml").read_text())["config"]
    prefix = f"{CONFIG_NAMESPACE}:"
    return {key[len(prefix) :]: value for key, value in raw.items() if key.startswith(prefix)}
