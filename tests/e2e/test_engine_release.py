"""The release flow through the real engine: canary step, promote, roll back, policy pack.

Marked like test_engine_program.py: xfail only while the engine plugins are
unbuildable here, strictly, and only for that exact error.
"""

import json
import sys
from pathlib import Path

import pytest
from e2e_kit import ENGINE_XFAIL, kubectl_json, pulumi_json, pulumi_run, run

pytestmark = [ENGINE_XFAIL, pytest.mark.timeout(900)]  # a real `up` waits for rollouts

SPLIT_KEYS = {"spec.replicas", "spec.minReplicas", "spec.maxReplicas"}


def init_stacks(project: Path, environ: dict[str, str]) -> None:
    for stack in ("staging", "prod"):
        pulumi_run(["stack", "init", stack], environ, project)


def release(project: Path, environ: dict[str, str], *args: str) -> str:
    return run([sys.executable, "-m", "infra", "release", "--root", str(project), *args], environ)


def up(project: Path, environ: dict[str, str], stack: str) -> None:
    pulumi_run(["up", "--stack", stack, "--yes", "--skip-preview"], environ, project)


def images(environ: dict[str, str], namespace: str) -> set[str]:
    deployments = kubectl_json(environ, "-n", namespace, "get", "deployments")["items"]
    return {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments}


def test_a_canary_weight_change_previews_only_the_split(project: Path, engine_env: dict[str, str]) -> None:
    init_stacks(project, engine_env)
    up(project, engine_env, "staging")
    release(project, engine_env, "canary", "--stack", "staging", "--weight", "50", "--reason", "e2e")
    plan = pulumi_json(["preview", "--stack", "staging", "--json", "--diff"], engine_env, project)
    changed = [step for step in plan["steps"] if step["op"] not in ("same", "read")]
    assert changed, "the weight change planned no update"
    for step in changed:
        assert step["op"] == "update", step
        assert step["newState"]["type"].split(":")[-1] in {"Deployment", "HorizontalPodAutoscaler"}
        assert set(step.get("detailedDiff", {})) <= SPLIT_KEYS, step.get("detailedDiff")
    up(project, engine_env, "staging")


def test_promote_then_rollback_ends_on_the_earlier_digest(project: Path, engine_env: dict[str, str]) -> None:
    init_stacks(project, engine_env)
    up(project, engine_env, "staging")
    up(project, engine_env, "prod")
    before = images(engine_env, "preview-prod")
    release(project, engine_env, "promote", "--from", "staging", "--to", "prod", "--reason", "e2e")
    up(project, engine_env, "prod")
    assert images(engine_env, "preview-prod") != before
    release(project, engine_env, "rollback", "--stack", "prod", "--reason", "e2e")
    up(project, engine_env, "prod")
    assert images(engine_env, "preview-prod") == before


def test_the_policy_pack_blocks_a_violating_prod_config(project: Path, engine_env: dict[str, str]) -> None:
    init_stacks(project, engine_env)
    stack_file = project / "Pulumi.prod.yaml"
    digest = "ghcr.io/mobius/preview-worker@sha256:" + "1" * 64
    text = stack_file.read_text().replace(
        "    weight: 0\n    image: null", f"    weight: 80\n    image: {digest}"
    )
    stack_file.write_text(text)
    policy = str(project / "policy")
    out = pulumi_run(
        ["preview", "--stack", "prod", "--policy-pack", policy], engine_env, project, expect_fail=True
    )
    assert "mandatory" in out.lower()
    assert "canary" in out.lower()
    exported = json.loads(pulumi_run(["stack", "export", "--stack", "prod"], engine_env, project))
    assert exported["deployment"].get("resources") in (None, [])
