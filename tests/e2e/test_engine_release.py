"""The release flow through the real engine: pin, canary, promote, rollback with ``--apply``.

Two local stacks (``dev-a``, ``dev-b``: the dev stack file in two namespaces of the
local cluster) stand in for staging and prod. Each command edits a stack file and,
with ``--apply``, runs ``pulumi up --policy-pack policy`` through the Automation API;
every test then reads the live Deployments and HPAs back from the API server.
Each release is a commit on its own branch of the project's git repository, merged into ``main``.
The tests share the two stacks and run in file order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_kit import ScratchProject, drop_stack, git_init, kubectl_json, pulumi_json, pulumi_run, run
from live_kit import container

from infra.manifests.scaling import canary
from infra.tools.release.stackfile import StackFile

pytestmark = pytest.mark.timeout(600)

REPO = "127.0.0.1:5000/mobius/preview-worker"
D1, D2, D3 = (f"{REPO}@sha256:{digit * 64}" for digit in "123")
STACKS = {"dev-a": "preview-dev-a", "dev-b": "preview-dev-b"}
REPLICAS = (4, 8)  # enough pods that canary weights give different splits


@pytest.fixture(scope="module")
def stacks(scratch_project: ScratchProject) -> Iterator[tuple[Path, dict[str, str]]]:
    """dev-a and dev-b, both deployed once from their stack files (dev-b at the committed digest)."""
    project, environ = scratch_project("engine-release")
    dev = (project / "Pulumi.dev.yaml").read_text()
    for stack, namespace in STACKS.items():
        text = dev.replace("namespace: preview-dev", f"namespace: {namespace}")
        # KWOK's pods take their whole grace period (drainSeconds + a margin) to go away: a short
        # drain keeps the pods of replaced ReplicaSets from lingering.
        key = "  mobius-preview-worker:worker:\n"
        text = text.replace(key, f"{key}    drainSeconds: 1\n", 1)
        text = text.replace("  min: 1\n    max: 2", f"  min: {REPLICAS[0]}\n    max: {REPLICAS[1]}", 1)
        (project / f"Pulumi.{stack}.yaml").write_text(text)
        pulumi_run(["stack", "init", stack], environ, project)
        pulumi_run(["up", "--stack", stack, "--yes", "--skip-preview"], environ, project)
    environ = git_init(project, environ)  # each release is a commit on its own branch
    yield project, environ
    for stack in STACKS:
        drop_stack(project, environ, stack)


def release(project: Path, environ: dict[str, str], *args: str, ok: bool = True) -> str:
    """``python -m infra release --root <copy> …``; its output (stdout and stderr) when it fails.

    A release is cut from ``main`` in a work tree of its own; once it ran, its branch is merged
    into ``main`` (the checkout), as its pull request would be before the next release.
    """
    cmd = [sys.executable, "-m", "infra", "release", "--root", str(project), *args, "--reason", "e2e"]
    if ok:
        before = set(release_branches(project, environ))
        out = run(cmd, environ, timeout=300)
        for branch in set(release_branches(project, environ)) - before:
            run(["git", "merge", "-q", "--ff-only", branch], environ, cwd=project)
        return out
    proc = subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def release_branches(project: Path, environ: dict[str, str]) -> list[str]:
    """The project's ``release/*`` branches."""
    listed = run(
        ["git", "for-each-ref", "--format=%(refname:short)", "refs/heads/release/"], environ, cwd=project
    )
    return listed.split()


def deployments(environ: dict[str, str], stack: str) -> list[dict[str, Any]]:
    """The live Deployments of ``stack``."""
    found: list[dict[str, Any]] = kubectl_json(environ, "-n", STACKS[stack], "get", "deployments")["items"]
    return found


def workload(environ: dict[str, str], stack: str) -> dict[str, Any]:
    """Per live Deployment: its image and its HPA's bounds."""
    namespace = STACKS[stack]
    hpas = {
        h["metadata"]["name"]: h["spec"]
        for h in kubectl_json(environ, "-n", namespace, "get", "hpa")["items"]
    }
    return {
        d["metadata"]["name"]: (
            container(d)["image"],
            hpas[d["metadata"]["name"]]["minReplicas"],
            hpas[d["metadata"]["name"]]["maxReplicas"],
        )
        for d in deployments(environ, stack)
    }


def expected(project: Path, stack: str) -> dict[str, Any]:
    """What the stack file says the live workload must be (split by infra.manifests.scaling.canary)."""
    state = StackFile(project / f"Pulumi.{stack}.yaml").state()
    running = state.canary if state.canary and state.canary.image and state.canary.weight else None
    split = canary.plan(*REPLICAS, running.weight if running else 0)
    stable = split.bounds("stable")
    want = {
        "preview-worker-stable": (state.image, stable.min, stable.max),
        "preview-worker-api": (state.image, 1, 1),  # the dev file's api.replicas
    }
    if running:
        bounds = split.bounds("canary")
        want["preview-worker-canary"] = (running.image, bounds.min, bounds.max)
    return want


def test_pin_with_apply_deploys_the_pinned_digest_and_leaves_no_kubeconfig_behind(
    stacks: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    project, environ = stacks
    tmp = {"TMPDIR": str(tmp_path)}
    release(project, {**environ, **tmp}, "pin", "--stack", "dev-a", "--image", D1, "--apply")
    assert workload(environ, "dev-a") == expected(project, "dev-a")
    assert workload(environ, "dev-a")["preview-worker-stable"][0] == D1
    # The provider writes its kubeconfig to a temporary file on every configure and never
    # removes it: a plain preview leaves one in TMPDIR; the apply ran in a folder of its own.
    assert list(tmp_path.glob("kubeconfig*")) == []
    pulumi_run(["preview", "--stack", "dev-a"], {**environ, **tmp}, project)
    assert list(tmp_path.glob("kubeconfig*")), (
        "the provider no longer leaves its kubeconfig: drop the private TMPDIR"
    )


def test_canary_with_apply_runs_the_split_the_stack_file_says(stacks: tuple[Path, dict[str, str]]) -> None:
    project, environ = stacks
    release(project, environ, "canary", "--stack", "dev-a", "--image", D2, "--weight", "50", "--apply")
    live = workload(environ, "dev-a")
    assert live == expected(project, "dev-a")
    assert (live["preview-worker-stable"][0], live["preview-worker-canary"][0]) == (D1, D2)
    assert (live["preview-worker-canary"][1], live["preview-worker-canary"][2]) == (2, 4)


def test_a_weight_step_changes_the_hpa_split_and_restarts_no_pod(stacks: tuple[Path, dict[str, str]]) -> None:
    project, environ = stacks
    templates = {d["metadata"]["name"]: d["spec"]["template"] for d in deployments(environ, "dev-a")}
    release(project, environ, "canary", "--stack", "dev-a", "--weight", "25")
    plan = pulumi_json(["preview", "--stack", "dev-a", "--json", "--diff"], environ, project)
    changed = [step for step in plan["steps"] if step["op"] not in ("same", "read")]
    assert {step["op"] for step in changed} == {"update"}
    hpa, deployment = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "kubernetes:apps/v1:Deployment"
    assert {step["newState"]["type"] for step in changed} <= {hpa, deployment}
    for step in changed:
        keys = set(step["detailedDiff"])
        if step["newState"]["type"] == hpa:
            assert keys <= {"spec.minReplicas", "spec.maxReplicas"}, keys
        else:  # the release id and weight annotations on the Deployment, never its pod template
            assert all(key.startswith("metadata.annotations") for key in keys), keys
    pulumi_run(["up", "--stack", "dev-a", "--yes", "--skip-preview"], environ, project)
    assert workload(environ, "dev-a") == expected(project, "dev-a")
    after = {d["metadata"]["name"]: d["spec"]["template"] for d in deployments(environ, "dev-a")}
    assert after == templates  # no pod was restarted


def test_the_promote_gate_reads_what_the_source_stack_really_deployed(
    stacks: tuple[Path, dict[str, str]],
) -> None:
    project, environ = stacks
    before = (project / "Pulumi.dev-a.yaml").read_text()
    release(project, environ, "pin", "--stack", "dev-a", "--image", D3)  # written, never deployed
    refused = release(project, environ, "promote", "--from", "dev-a", "--to", "dev-b", ok=False)
    assert f"refusing to promote {D3}" in refused
    assert f"deployed sha256:{'1' * 64}" in refused or f"deployed {D1}" in refused
    run(["git", "reset", "-q", "--hard", "HEAD~1"], environ, cwd=project)  # main back to what dev-a runs
    assert (project / "Pulumi.dev-a.yaml").read_text() == before


def test_promote_with_apply_carries_the_running_digest(stacks: tuple[Path, dict[str, str]]) -> None:
    project, environ = stacks
    committed = StackFile(project / "Pulumi.dev-b.yaml").state().image
    assert workload(environ, "dev-b")["preview-worker-stable"][0] == committed
    release(project, environ, "promote", "--from", "dev-a", "--to", "dev-b", "--apply")
    assert workload(environ, "dev-b") == expected(project, "dev-b")
    assert workload(environ, "dev-b")["preview-worker-stable"][0] == D1


def test_rollback_with_apply_restores_the_previous_digest_live(stacks: tuple[Path, dict[str, str]]) -> None:
    project, environ = stacks
    committed = (Path(__file__).parents[2] / "Pulumi.dev.yaml").read_text()
    release(project, environ, "rollback", "--stack", "dev-b", "--apply")
    live = workload(environ, "dev-b")
    assert live == expected(project, "dev-b")
    assert live["preview-worker-stable"][0] != D1
    assert live["preview-worker-stable"][0] in committed  # the digest dev-b ran before the promote
    pulumi_run(["preview", "--stack", "dev-b", "--expect-no-changes"], environ, project)


def status(project: Path, environ: dict[str, str], stack: str) -> dict[str, Any]:
    """``release status --stack S --json``: stdout is one JSON document."""
    cmd = [
        sys.executable,
        "-m",
        "infra",
        "release",
        "--root",
        str(project),
        "status",
        "--stack",
        stack,
        "--json",
    ]
    found: dict[str, Any] = json.loads(run(cmd, environ, timeout=120))
    return found


def test_status_shows_the_file_the_last_up_and_the_cluster_side_by_side(
    stacks: tuple[Path, dict[str, str]],
) -> None:
    """dev-b after the rollback: in step; then a release cut and not merged; then merged, not deployed."""
    project, environ = stacks
    image = StackFile(project / "Pulumi.dev-b.yaml").state().image
    assert image is not None
    digest = image.split("@")[1]
    doc = status(project, environ, "dev-b")
    assert doc["warnings"] == [] and doc["exitCode"] == 0
    assert doc["file"]["values"]["image"] == image
    deployed = doc["deployed"]["values"]
    assert deployed["result"] == "succeeded" and deployed["digests"] == {"stable": digest}
    assert deployed["releaseId"] == doc["file"]["values"]["releaseId"]
    live = doc["live"]["values"]
    assert live["namespace"] == STACKS["dev-b"]
    stable = live["tracks"]["stable"]
    assert stable["image"] == image and stable["readyPods"] == {image: stable["replicas"]}
    assert stable["replicas"] >= REPLICAS[0] and doc["branches"] == {"error": None, "values": []}

    # Cut, not merged: the checkout's file is unchanged, the branch is open.
    before = set(release_branches(project, environ))
    pin = ["pin", "--stack", "dev-b", "--image", D3, "--reason", "e2e"]
    run([sys.executable, "-m", "infra", "release", "--root", str(project), *pin], environ, timeout=120)
    (branch,) = set(release_branches(project, environ)) - before
    doc = status(project, environ, "dev-b")
    assert doc["warnings"] == [f"release branch {branch} is not merged (a pull request is open or stale)"]

    # Merged, not deployed: the file and the last `pulumi up` disagree.
    run(["git", "merge", "-q", "--ff-only", branch], environ, cwd=project)
    doc = status(project, environ, "dev-b")
    assert doc["warnings"][0] == (
        f"stable image: the stack file says sha256:{'3' * 64}, the last `pulumi up` deployed {digest}"
    )
    assert doc["live"]["values"]["tracks"]["stable"]["readyPods"] == {image: stable["replicas"]}
    assert doc["branches"]["values"] == []  # merged
    run(["git", "reset", "-q", "--hard", "HEAD~1"], environ, cwd=project)  # main back to what dev-b runs
    run(["git", "branch", "-q", "-D", branch], environ, cwd=project)
