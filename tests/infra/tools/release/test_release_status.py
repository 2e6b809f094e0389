"""``release status``: the four parts, their disagreements, the table, and open branches on a real origin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from release_testkit import Run, digest, git, origin_of

from infra.config.fields.image_refs import split_image
from infra.config.sections.cluster_target import ClusterTarget
from infra.errors import KubeError
from infra.tools.release import branches, status, status_table
from infra.tools.release.stackfile import StackFile
from infra.tools.release.status import Part, Status

A, B = (split_image(digest(c))[1] for c in "ab")


def deployment(track: str, image: str, replicas: int) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": f"preview-worker-{track}", "labels": {"track": track}},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"image": image}]}}},
    }


def pod(track: str, image: str, ready: bool = True) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"labels": {"track": track}},
        "spec": {"containers": [{"image": image}]},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def file_part(image: str, weight: int = 0, canary: str | None = None, release: str = "r-1") -> Part:
    return Part(
        {
            "image": image,
            "canary": {"weight": weight, "image": canary},
            "releaseId": release,
            "canaryWeight": weight if canary else 0,
        }
    )


def deployed_part(stable: str, weight: int = 0, canary: str | None = None, release: str = "r-1") -> Part:
    digests = {"stable": stable, **({"canary": canary} if canary else {})}
    return Part(
        {"result": "succeeded", "time": "t", "digests": digests, "canaryWeight": weight, "releaseId": release}
    )


def build(file: Part, deployed: Part, items: list[dict[str, Any]] | None, open_: Any = ()) -> Status:
    live = (
        Part(error="unreachable")
        if items is None
        else Part({"namespace": "ns", "tracks": status.tracks(items)})
    )
    return Status("prod", {"file": file, "deployed": deployed, "live": live, "branches": Part(list(open_))})


def test_tracks_counts_ready_pods_per_track_and_image() -> None:
    items = [
        deployment("stable", digest("a"), 3),
        pod("stable", digest("a")),
        pod("stable", digest("a"), ready=False),
        pod("stable", digest("b")),
        deployment("canary", digest("b"), 1),
        pod("canary", digest("b")),
    ]
    assert status.tracks(items) == {
        "stable": {
            "deployment": "preview-worker-stable",
            "image": digest("a"),
            "replicas": 3,
            "readyPods": {digest("a"): 1, digest("b"): 1},
        },
        "canary": {
            "deployment": "preview-worker-canary",
            "image": digest("b"),
            "replicas": 1,
            "readyPods": {digest("b"): 1},
        },
    }


def test_everything_in_step_warns_nothing() -> None:
    items = [deployment("stable", digest("a"), 2), pod("stable", digest("a")), pod("stable", digest("a"))]
    found = build(file_part(digest("a")), deployed_part(A), items)
    assert found.warnings() == []
    assert "no warnings: the stack file, the last deploy and the cluster agree" in status_table.render(found)


def test_a_file_not_deployed_yet_and_pods_on_another_image_are_warned() -> None:
    items = [deployment("stable", digest("a"), 2), pod("stable", digest("a")), pod("stable", digest("b"))]
    found = build(file_part(digest("b"), release="r-2"), deployed_part(A), items)
    assert found.warnings() == [
        f"stable image: the stack file says {B}, the last `pulumi up` deployed {A}",
        "release ID: the stack file says r-2, the last `pulumi up` deployed r-1",
        f"live stable: 1 ready pod(s) run {digest('b')}, not {A}",
        f"live stable: 1/2 pods ready on {A}",
    ]
    table = status_table.render(found)
    assert "WARNINGS\n  ! stable image: the stack file says" in table


def test_a_canary_weight_and_a_failed_update_are_warned() -> None:
    deployed = deployed_part(A, weight=10, canary=B)
    deployed.values["result"] = "failed"
    items = [deployment("stable", digest("a"), 1), pod("stable", digest("a"))]
    found = build(file_part(digest("a"), weight=25, canary=digest("b")), deployed, items)
    assert found.warnings() == [
        "the last `pulumi up --stack prod` failed; its outputs may be stale",
        "canary weight: the stack file says 25, the last `pulumi up` deployed 10",
        f"track canary ({B}) has no live Deployment",
    ]


def test_open_branches_are_warned_a_rollout_with_its_step() -> None:
    open_ = [
        {"branch": "release/prod/r-1", "kind": "release", "commit": "0" * 40, "step": ""},
        {
            "branch": "release/prod/rollout-abc",
            "kind": "rollout",
            "commit": "1" * 40,
            "step": "step 2/3 at 25%",
        },
    ]
    found = build(file_part(digest("a")), deployed_part(A), None, open_)
    assert found.warnings() == [
        "release branch release/prod/r-1 is not merged (a pull request is open or stale)",
        "a rollout is under way on release/prod/rollout-abc at step 2/3 at 25%; main's file is not what runs",
    ]
    table = status_table.render(found)
    assert "LIVE\n  unavailable: unreachable\n" in table
    assert "release/prod/rollout-abc  rollout 111111111111, step 2/3 at 25%" in table


def test_unreachable_parts_are_rows_with_a_reason(repo: Path) -> None:
    def refuse(target: ClusterTarget, namespace: str, stack: str) -> list[dict[str, Any]]:
        raise KubeError(f"kubectl exited 1:\n{stack} {namespace}: connection refused")

    sf = StackFile(repo / "Pulumi.prod.yaml")
    found = status.gather(repo, sf, live=refuse)
    assert found.parts["live"].error == "kubectl exited 1: prod preview: connection refused"
    assert found.parts["deployed"].error  # no engine state reachable here: a reason, not a traceback
    assert found.parts["file"].values["image"] == sf.state().image
    document = found.to_json()
    assert list(document) == ["stack", "file", "deployed", "live", "branches", "warnings"]
    assert all(set(document[p]) == {"error", "values"} for p in status.PARTS)
    json.dumps(document)


def test_a_bad_cluster_section_is_the_live_rows_reason(repo: Path) -> None:
    prod = repo / "Pulumi.prod.yaml"
    prod.write_text(prod.read_text().replace("identity: ", "identity: not-a-uid  # ", 1))
    part = status.read_live(StackFile(prod), reader=lambda *_: [])
    assert part.error is not None
    assert part.error.startswith("Pulumi.prod.yaml: cluster.identity: must be the UID of the cluster's")
    assert part.error.endswith("got 'not-a-uid'")
    prod.write_text(
        prod.read_text().replace("mobius-preview-worker:cluster:", "mobius-preview-worker:elsewhere:")
    )
    part = status.read_live(StackFile(prod), reader=lambda *_: [])
    assert (
        part.error
        == "Pulumi.prod.yaml: cluster: Input should be a valid dictionary or instance of ClusterTarget"
    )


def test_open_branches_are_the_remotes_unmerged_release_branches(repo: Path, run: Run) -> None:
    assert run("pin", "--stack", "prod", "--image", digest("a"), "--push").code == 0  # merged
    assert run("pin", "--stack", "prod", "--image", digest("b"), "--push", merged=False).code == 0
    assert run("pin", "--stack", "staging", "--image", digest("b"), "--push", merged=False).code == 0
    assert run("canary", "--stack", "prod", "--weight", "5", "--image", digest("c"), merged=False).code == 0
    # A rollout branch on the remote whose last commit names its step.
    git(repo, "switch", "-q", "-c", "release/prod/rollout-cccccccccccc")
    git(
        repo,
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "release(prod): rollout-step\n\nRollout-Step: step 2/3 at 25%",
    )
    git(repo, "push", "-q", "origin", "HEAD")
    git(repo, "switch", "-q", "main")
    found = branches.open_branches(repo, "prod")
    assert [(b["kind"], b["step"]) for b in found] == [("release", ""), ("rollout", "step 2/3 at 25%")]
    assert (
        found[0]["branch"].startswith("release/prod/r-")
        and found[0]["commit"] == git(origin_of(repo), "rev-parse", found[0]["branch"]).strip()
    )
    assert [b["kind"] for b in branches.open_branches(repo, "staging")] == ["release"]
    # The pin merges: its branch, still on the remote, is no longer open.
    git(repo, "push", "-q", "origin", f"{found[0]['branch']}:main")
    assert [b["kind"] for b in branches.open_branches(repo, "prod")] == ["rollout"]


def test_without_a_remote_the_clones_own_branches_count(repo: Path, run: Run) -> None:
    git(repo, "remote", "remove", "origin")
    assert run("pin", "--stack", "prod", "--image", digest("a"), merged=False).code == 0
    (found,) = branches.open_branches(repo, "prod")
    assert found["kind"] == "release" and found["branch"].startswith("release/prod/r-")


@pytest.mark.parametrize("remote", ["origin", "nowhere"])
def test_status_runs_and_prints_every_part(repo: Path, run: Run, remote: str) -> None:
    if remote == "nowhere":
        git(repo, "remote", "set-url", "origin", str(repo.parent / "nowhere.git"))
    result = run("status", "--stack", "prod")
    assert result.code == 0, result.err
    for title in ("STACK FILE", "LAST PULUMI UP", "LIVE", "OPEN BRANCHES"):
        assert f"\n{title}\n" in result.out
    assert "Traceback" not in result.out + result.err
    if remote == "nowhere":
        assert "OPEN BRANCHES\n  unavailable: git ls-remote" in result.out
