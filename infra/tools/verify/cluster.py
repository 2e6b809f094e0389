"""The checks of the cluster side: the stack's binding, its outputs, what the API server says.

Each takes the :class:`~infra.tools.verify.target.Target` and returns what it saw, or raises an
:class:`~infra.errors.InfraError` saying what was expected and what was found. The API server is
reached through the stack's own ``cluster`` binding (its kubeconfig and context, checked against
its identity first), as ``pulumi up`` reaches it.
"""

from __future__ import annotations

import json
from typing import Any

from infra import cluster_identity, runner
from infra.components import outputs as stack_outputs
from infra.config.model import load_stack_file
from infra.errors import VerifyError
from infra.tools.release import engine
from infra.tools.verify.target import Target
from worker import constants as c


def kubectl(t: Target, *args: str) -> Any:
    """``kubectl … -o json`` through the stack's own kubeconfig and context."""
    base = cluster_identity.kubectl_args(t.cluster) if t.cluster is not None else ["kubectl"]
    argv = [*base, *args, "-o", "json", "--request-timeout=20s"]
    return json.loads(runner.run(argv, error=VerifyError, timeout=60))


def check_cluster(t: Target) -> str:
    """The stack file's ``cluster`` binding reaches the cluster it names (as ``pulumi up`` checks)."""
    cfg = load_stack_file(t.root / f"Pulumi.{t.stack}.yaml")
    seen = cluster_identity.read_cluster(cfg.cluster)
    why = cluster_identity.mismatch(cfg.cluster, seen)
    if why:
        raise VerifyError(f"stack {t.stack} is bound to another cluster: {why}")
    t.cluster = cfg.cluster
    return f"kube-system {seen.uid} at {seen.server}"


def check_outputs(t: Target) -> str:
    """The outputs of the stack's last successful update."""
    handle = engine.stack_handle(t.root, t.stack)
    try:
        updates = [u for u in handle.history(page_size=5) if u.kind == "update"]
        outputs = {key: out.value for key, out in handle.outputs().items()}
    except Exception as exc:  # the Automation API raises CommandError subclasses and OSError
        raise VerifyError(f"cannot read stack {t.stack!r}: {engine.why(exc)}") from None
    if not updates or updates[0].result != "succeeded":
        raise VerifyError(
            f"the last update of {t.stack} did not succeed ({updates[0].result if updates else 'none'})"
        )
    required = (stack_outputs.NAMESPACE, stack_outputs.DEPLOYMENTS, stack_outputs.DIGESTS, stack_outputs.API)
    missing = [k for k in required if k not in outputs]
    if missing:
        raise VerifyError(f"outputs lack {', '.join(missing)}: is this the preview worker's stack?")
    t.outputs = outputs
    tracks = ", ".join(sorted(outputs[stack_outputs.DEPLOYMENTS]))
    return f"namespace {outputs[stack_outputs.NAMESPACE]}, tracks {tracks}"


def check_deployments(t: Target) -> str:
    """Every Deployment Available, with ready pods (as the API server counts them), at its digest."""
    ns, digests = t.outputs[stack_outputs.NAMESPACE], t.outputs[stack_outputs.DIGESTS]
    wanted = {name: digests[track] for track, name in t.outputs[stack_outputs.DEPLOYMENTS].items()}
    workers = set(wanted)
    wanted[t.outputs[stack_outputs.API]] = digests[c.TRACK_STABLE]
    seen = []
    for name, digest in sorted(wanted.items()):
        found = kubectl(t, "-n", ns, "get", "deployment", name)
        status = found.get("status", {})
        available = any(
            cond.get("type") == "Available" and cond.get("status") == "True"
            for cond in status.get("conditions", [])
        )
        ready, want = int(status.get("readyReplicas") or 0), int(found["spec"].get("replicas") or 0)
        scale_to_zero = bool(t.outputs.get(stack_outputs.SCALE_TO_ZERO))
        idle = want == 0 and name in workers and scale_to_zero  # KEDA's choice
        if not available or (ready < 1 and not idle) or ready < want:
            raise VerifyError(f"{name}: {ready}/{want} pods ready, Available={available}")
        images = [ctr["image"] for ctr in found["spec"]["template"]["spec"]["containers"]]
        if not all(image.endswith(f"@{digest}") for image in images):
            raise VerifyError(f"{name} runs {', '.join(images)}, not the pinned {digest}")
        seen.append(f"{name} {ready}/{want}")
    return "; ".join(seen)


def check_objects(t: Target) -> str:
    """The autoscaling, disruption and monitoring objects of the stack's instance."""
    ns = t.outputs[stack_outputs.NAMESPACE]
    counts = {}
    for kind in (
        "hpa",
        "pdb",
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ):
        items = kubectl(t, "-n", ns, "get", kind, "-l", f"app.kubernetes.io/instance={t.stack}")["items"]
        counts[kind.split(".")[0]] = len(items)
    expected_hpas = len(t.outputs[stack_outputs.DEPLOYMENTS]) + 1  # a track each, and the API's
    problems = []
    if counts["hpa"] < expected_hpas:
        problems.append(f"{counts['hpa']} HPAs, expected {expected_hpas}")
    problems += [f"no {kind}" for kind in ("pdb", "servicemonitors", "prometheusrules") if counts[kind] == 0]
    if problems:
        raise VerifyError("; ".join(problems))
    return ", ".join(f"{n} {k}" for k, n in counts.items())
