"""``release status --stack S``: stack file, last deploy, live cluster and open branches side by side.

Four parts, each read on its own so one that cannot be reached is a row with the reason,
never a traceback:

* **file** — the release fields of ``Pulumi.<stack>.yaml`` in this checkout;
* **deployed** — the last ``pulumi up``'s non-secret outputs (``digests``, ``canaryWeight``,
  ``releaseId``), its result and time (:func:`infra.tools.release.engine.last_deploy`, no
  passphrase needed);
* **live** — the worker Deployments and their ready pods per track and image, read with
  ``kubectl`` through the stack's ``cluster`` binding (its kubeconfig and context, and the
  identity check of :mod:`infra.cluster_identity`: another cluster is a reason, not a reading);
* **branches** — every ``release/<stack>/*`` branch on the remote not merged into its default
  branch (a pending release pull request, or a rollout and the step its last commit names).

:func:`warnings` compares them, like ``kubectl argo rollouts get rollout`` does: a file not
deployed yet, a failed last update, live pods on another image, pods not ready, a rollout
under way. The JSON form (``--json``) is :meth:`Status.to_json`, documented in docs/releases.md;
the table is :mod:`infra.tools.release.status_table`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from infra import cluster_identity, runner
from infra.components import outputs as stack_outputs
from infra.config.fields.image_refs import split_image
from infra.config.model import CONFIG_NAMESPACE
from infra.config.sections.cluster_target import ClusterTarget
from infra.errors import InfraError, KubeError
from infra.tools.release import branches, engine
from infra.tools.release.stackfile import StackFile
from worker.constants import LABEL_TRACK, TRACK_CANARY, TRACK_STABLE

PARTS = ("file", "deployed", "live", "branches")


@dataclass
class Part:
    """One column of the status: its values, or why it could not be read."""

    values: Any = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"error": null|str, "values": …}``."""
        return {"error": self.error, "values": self.values}


@dataclass
class Status:
    """A stack's status: the four parts and what disagrees between them."""

    stack: str
    parts: dict[str, Part] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        """Where the parts disagree (see :func:`warnings`)."""
        return warnings(self)

    def to_json(self) -> dict[str, Any]:
        """The ``status --json`` document (docs/releases.md#status)."""
        return {
            "stack": self.stack,
            **{name: self.parts[name].to_json() for name in PARTS},
            "warnings": self.warnings(),
        }


def one_line(text: str) -> str:
    """A multi-line error (a command and the tail of its output) as one row."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def digest_of(image: str | None) -> str | None:
    """``sha256:…`` of an image reference (or of a bare digest); None for None."""
    if not image:
        return None
    return split_image(image)[1] if "@" in image else image


def read_file(sf: StackFile) -> Part:
    """The release fields as the stack file holds them."""
    state = sf.state()
    canary = None if state.canary is None else {"weight": state.canary.weight, "image": state.canary.image}
    return Part(
        {
            "image": state.image,
            "canary": canary,
            "releaseId": state.release_id,
            "canaryWeight": state.canary_weight,
        }
    )


def read_deployed(root: Path, stack: str) -> Part:
    """The last ``pulumi up``: result, time and the outputs the release tool compares."""
    try:
        deploy = engine.last_deploy(root, stack)
    except InfraError as exc:
        return Part(error=one_line(str(exc)))
    if deploy is None:
        return Part(error=f"stack {stack} has no `pulumi up` in its history")
    digests = deploy.output(stack_outputs.DIGESTS)
    return Part(
        {
            "result": deploy.result,
            "time": deploy.time,
            "digests": digests if isinstance(digests, dict) else {},
            "canaryWeight": deploy.output(stack_outputs.CANARY_WEIGHT),
            "releaseId": deploy.output(stack_outputs.RELEASE_ID) or None,
        }
    )


#: Reads the live objects of a stack: (cluster target, namespace) → ``kubectl get -o json`` items.
LiveReader = Callable[[ClusterTarget, str, str], list[dict[str, Any]]]


def kubectl_items(target: ClusterTarget, namespace: str, stack: str) -> list[dict[str, Any]]:
    """The worker Deployments and pods (those with a ``track`` label), on the stack's own cluster."""
    cluster_identity.check(target, stack)  # TargetError: another cluster's objects are no answer
    argv = [*cluster_identity.kubectl_args(target), "-n", namespace, "get", "deployments,pods"]
    out = runner.run(
        [*argv, "-l", LABEL_TRACK, "-o", "json", "--request-timeout=20s"], error=KubeError, timeout=40
    )
    items: list[dict[str, Any]] = json.loads(out).get("items", [])
    return items


def read_live(sf: StackFile, reader: LiveReader = kubectl_items) -> Part:
    """Per track: the Deployment, its image, desired replicas, and ready pods by image."""
    config = (yaml.safe_load(sf.text) or {}).get("config") or {}
    try:
        target = ClusterTarget.model_validate(config.get(f"{CONFIG_NAMESPACE}:cluster"))
    except ValidationError as exc:
        why = "; ".join(
            ".".join(["cluster", *map(str, e["loc"])]) + f": {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        return Part(error=f"{sf.path.name}: {why}")
    namespace = str(config.get(f"{CONFIG_NAMESPACE}:namespace") or "preview-worker")
    try:
        items = reader(target, namespace, sf.stack)
    except (InfraError, ValueError) as exc:
        return Part(error=one_line(str(exc)))
    return Part({"namespace": namespace, "tracks": tracks(items)})


def tracks(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Deployments and pods (``kubectl get -o json`` items) summarised per ``track`` label."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if item.get("kind") != "Deployment":
            continue
        meta, spec = item.get("metadata", {}), item.get("spec", {})
        containers = spec.get("template", {}).get("spec", {}).get("containers") or [{}]
        out[meta.get("labels", {}).get(LABEL_TRACK, "?")] = {
            "deployment": meta.get("name"),
            "image": containers[0].get("image"),
            "replicas": spec.get("replicas", 0),
            "readyPods": {},
        }
    for item in items:
        if item.get("kind") != "Pod":
            continue
        track = item.get("metadata", {}).get("labels", {}).get(LABEL_TRACK, "?")
        containers = item.get("spec", {}).get("containers") or [{}]
        conditions = item.get("status", {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        entry = out.setdefault(track, {"deployment": None, "image": None, "replicas": 0, "readyPods": {}})
        image = str(containers[0].get("image"))
        entry["readyPods"][image] = entry["readyPods"].get(image, 0) + int(ready)
    return out


def read_branches(root: Path, stack: str, remote: str = "origin", base: str = "main") -> Part:
    """The ``release/<stack>/*`` branches on the remote (or here, without one) not merged into ``base``."""
    try:
        return Part(branches.open_branches(root, stack, remote, base))
    except InfraError as exc:
        return Part(error=one_line(str(exc)))


def gather(root: Path, sf: StackFile, live: LiveReader = kubectl_items) -> Status:
    """Read the four parts of ``sf``'s stack."""
    return Status(
        sf.stack,
        {
            "file": read_file(sf),
            "deployed": read_deployed(root, sf.stack),
            "live": read_live(sf, live),
            "branches": read_branches(root, sf.stack),
        },
    )


def warnings(status: Status) -> list[str]:
    """Every disagreement between the parts, one line each."""
    found: list[str] = []
    file, deployed, live, open_ = (status.parts[name] for name in PARTS)
    dep = deployed.values if deployed.error is None else None
    if dep is not None:
        if dep["result"] != "succeeded":
            last = f"the last `pulumi up --stack {status.stack}`"
            found.append(f"{last} {dep['result']}; its outputs may be stale")
        if file.error is None:
            found += _file_vs_deployed(file.values, dep)
    if live.error is None:
        want = dep["digests"] if dep is not None else {}
        if dep is None and file.error is None:  # compare with the file when nothing was deployed
            want = {TRACK_STABLE: digest_of(file.values.get("image"))}
            if file.values["canaryWeight"]:
                want[TRACK_CANARY] = digest_of(file.values["canary"]["image"])
        found += _live_vs(want, live.values["tracks"])
    for branch in open_.values or []:
        if branch["kind"] == "rollout":
            at = f" at {branch['step']}" if branch.get("step") else ""
            found.append(f"a rollout is under way on {branch['branch']}{at}; main's file is not what runs")
        else:
            found.append(f"release branch {branch['branch']} is not merged (a pull request is open or stale)")
    return found


def _file_vs_deployed(file: dict[str, Any], dep: dict[str, Any]) -> list[str]:
    found = []
    pairs: list[tuple[str, Any, Any]] = [
        ("stable image", digest_of(file.get("image")), dep["digests"].get(TRACK_STABLE)),
        ("canary weight", file["canaryWeight"], dep["canaryWeight"]),
        ("release ID", file.get("releaseId"), dep["releaseId"]),
    ]
    if file["canaryWeight"]:
        canary = file.get("canary") or {}
        pairs.append(("canary image", digest_of(canary.get("image")), dep["digests"].get(TRACK_CANARY)))
    for what, says, ran in pairs:
        if says != ran:
            found.append(f"{what}: the stack file says {says}, the last `pulumi up` deployed {ran}")
    return found


def _live_vs(want: dict[str, Any], live: dict[str, Any]) -> list[str]:
    found = []
    for track, info in sorted(live.items()):
        expected = want.get(track)
        if expected is None:
            found.append(f"live track {track} ({info['deployment']}) is not in the last deploy")
            continue
        for image, ready in sorted(info["readyPods"].items()):
            if digest_of(image) != expected:
                found.append(f"live {track}: {ready} ready pod(s) run {image}, not {expected}")
        ready_total = sum(n for image, n in info["readyPods"].items() if digest_of(image) == expected)
        if ready_total < info["replicas"]:
            found.append(f"live {track}: {ready_total}/{info['replicas']} pods ready on {expected}")
    for track, expected in sorted(want.items()):
        if expected and track not in live:
            found.append(f"track {track} ({expected}) has no live Deployment")
    return found
