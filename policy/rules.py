"""The policy pack's rules: pure checks over Kubernetes manifests (``policy/pack.py`` wraps them).

Each ``check_*`` takes the resource's inputs (``props``, camelCase as the
Kubernetes provider receives them) and returns one message per violation, so
the rules are unit-tested without the engine, and this module loads no Pulumi SDK.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from infra.config.fields.image_refs import IMAGE_RE
from infra.errors import InfraError
from infra.manifests.common import ANNOTATION_CANARY_WEIGHT, HOLDS_STATE, LABEL_INSTANCE, LABEL_NAME
from infra.manifests.observability.slo_rules import (
    LABEL_SLO,
    SEVERITY_PAGE,
    SEVERITY_TICKET,
    SLO_AVAILABILITY,
    SLO_LATENCY,
)
from worker.constants import SECRET_ENV_VARS, TRACK_CANARY

PACK_NAME = "mobius-preview-worker"
PROD_MAX_CANARY_WEIGHT = 50
PROD_MIN_REPLICAS = 2
DEFAULT_PRODUCTION_INSTANCES = ["prod"]

_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
_SECRET_KEY = re.compile(r"(?i)(passw(or)?d|secret|token|api[_-]?key|private[_-]?key|credential)")
_URL_WITH_CREDENTIALS = re.compile(r"://[^/\s:@]*:[^/\s@]+@")


def pod_spec(props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec of a Pod or a workload with a pod template; None for other kinds."""
    kind = props.get("kind")
    if kind == "Pod":
        return props.get("spec") or {}
    if kind in _WORKLOADS:
        return ((props.get("spec") or {}).get("template") or {}).get("spec") or {}
    if kind == "CronJob":
        job = ((props.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        return (job.get("template") or {}).get("spec") or {}
    return None


def _containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def check_images_pinned(props: Mapping[str, Any]) -> list[str]:
    """Every container image is ``repository@sha256:<64 hex>``."""
    spec = pod_spec(props)
    if spec is None:
        return []
    return [
        f"container {c.get('name')}: image {c.get('image')!r} is not pinned by digest"
        " (repository@sha256:<64 hex>)"
        for c in _containers(spec)
        if not isinstance(c.get("image"), str) or not IMAGE_RE.fullmatch(c["image"])
    ]


def check_limits(props: Mapping[str, Any]) -> list[str]:
    """Every container sets CPU and memory requests and limits."""
    spec = pod_spec(props)
    if spec is None:
        return []
    problems = []
    for c in _containers(spec):
        resources = c.get("resources") or {}
        for section in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in (resources.get(section) or {})]
            if missing:
                problems.append(f"container {c.get('name')}: no {section} for {', '.join(missing)}")
    return problems


def check_non_root(props: Mapping[str, Any]) -> list[str]:
    """Every container runs as non-root (runAsNonRoot on the pod or the container, never UID 0)."""
    spec = pod_spec(props)
    if spec is None:
        return []
    pod_ctx = spec.get("securityContext") or {}
    problems = []
    for c in _containers(spec):
        ctx = {**pod_ctx, **(c.get("securityContext") or {})}
        if ctx.get("runAsNonRoot") is not True:
            problems.append(f"container {c.get('name')}: runAsNonRoot is not true")
        if ctx.get("runAsUser") == 0:
            problems.append(f"container {c.get('name')}: runAsUser is 0 (root)")
    return problems


def check_configmap_secrets(props: Mapping[str, Any]) -> list[str]:
    """No secret-looking keys (or URLs with credentials) in a ConfigMap."""
    if props.get("kind") != "ConfigMap":
        return []
    problems = []
    for key, value in (props.get("data") or {}).items():
        if key in SECRET_ENV_VARS or _SECRET_KEY.search(key):
            problems.append(f"key {key}: looks like a secret; put it in a Secret")
        elif isinstance(value, str) and _URL_WITH_CREDENTIALS.search(value):
            problems.append(f"key {key}: value is a URL with credentials; put it in a Secret")
    return problems


def _labels(props: Mapping[str, Any]) -> Mapping[str, str]:
    return (props.get("metadata") or {}).get("labels") or {}


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    match = selector.get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def check_production(resources: Iterable[Mapping[str, Any]], instances: Iterable[str]) -> list[str]:
    """In a production instance: >= 2 replicas per application (the worker's tracks together, the
    job API on its own), a PodDisruptionBudget over every Deployment's pods, canary weight <= 50."""
    prod = set(instances)
    objs = [r for r in resources if _labels(r).get(LABEL_INSTANCE) in prod]
    # By name: violations come out in the same order whatever order the engine registered them in.
    deployments = sorted(
        (r for r in objs if r.get("kind") == "Deployment"), key=lambda r: str(r["metadata"]["name"])
    )
    if not deployments:
        return []
    # The floor an autoscaler keeps each Deployment at: an HPA's minReplicas, or a KEDA
    # ScaledObject's minReplicaCount (0 with scale-to-zero).
    floor_field = {"HorizontalPodAutoscaler": "minReplicas", "ScaledObject": "minReplicaCount"}
    floors = {
        (h.get("spec") or {}).get("scaleTargetRef", {}).get("name"): (h.get("spec") or {}).get(
            floor_field[h["kind"]], 1
        )
        for h in objs
        if h.get("kind") in floor_field
    }
    pdbs = [p for p in objs if p.get("kind") == "PodDisruptionBudget"]
    problems: list[str] = []
    totals: dict[str, int] = {}
    for d in deployments:
        name, spec = d["metadata"]["name"], d.get("spec") or {}
        app = _labels(d).get(LABEL_NAME, name)
        totals[app] = totals.get(app, 0) + floors.get(name, spec.get("replicas", 1))
        pod_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not any(_selects((p.get("spec") or {}).get("selector") or {}, pod_labels) for p in pdbs):
            problems.append(f"Deployment {name}: no PodDisruptionBudget selects its pods")
        weight = ((d.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_CANARY_WEIGHT)
        is_canary = _labels(d).get("track") == TRACK_CANARY
        if is_canary and weight is not None and int(weight) > PROD_MAX_CANARY_WEIGHT:
            problems.append(f"Deployment {name}: canary weight {weight} is above {PROD_MAX_CANARY_WEIGHT}")
    problems += [
        f"production runs {total} {app} replica(s) at minimum; needs at least {PROD_MIN_REPLICAS}"
        for app, total in sorted(totals.items())
        if total < PROD_MIN_REPLICAS
    ]
    return problems


def check_protection(
    resources: Iterable[tuple[Mapping[str, Any], bool]], instances: Iterable[str]
) -> list[str]:
    """In a production instance, every object holding state or identity (``HOLDS_STATE``: the
    Namespace, ServiceAccounts, Secrets, ExternalSecrets, SecretStores) is ``protect``ed.

    ``resources`` are (props, protected) pairs; an object is in production when its instance
    label names a production instance.
    """
    prod = set(instances)
    problems = []
    for props, protected in resources:
        kind = props.get("kind")
        if kind in HOLDS_STATE and _labels(props).get(LABEL_INSTANCE) in prod and not protected:
            name = (props.get("metadata") or {}).get("name")
            problems.append(
                f"{kind} {name}: not protected in production (set protect: true in the stack config)"
            )
    return sorted(problems)


#: What a production stack must alert on: each SLO's page and ticket burn-rate alert.
PROD_SLOS = (SLO_AVAILABILITY, SLO_LATENCY)


def check_slos(resources: Iterable[Mapping[str, Any]], instances: Iterable[str]) -> list[str]:
    """In a production instance, the PrometheusRules page and open tickets on the burn rate of both
    SLOs (availability and latency): a stack without ``slos`` in its config has neither."""
    prod = set(instances)
    objs = [r for r in resources if _labels(r).get(LABEL_INSTANCE) in prod]
    if not any(r.get("kind") == "Deployment" for r in objs):
        return []
    found = {
        (str((rule.get("labels") or {}).get(LABEL_SLO)), str((rule.get("labels") or {}).get("severity")))
        for r in objs
        if r.get("kind") == "PrometheusRule"
        for group in ((r.get("spec") or {}).get("groups") or [])
        for rule in (group.get("rules") or [])
        if "alert" in rule
    }
    return [
        f"production has no {kind} burn-rate alert for the {slo} SLO (declare slos.{slo} in the stack config)"
        for slo in PROD_SLOS
        for severity, kind in ((SEVERITY_PAGE, "page"), (SEVERITY_TICKET, "ticket"))
        if (slo, severity) not in found
    ]


def pod_images(resources: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every container image the workloads among ``resources`` run, once each, sorted."""
    found: set[str] = set()
    for props in resources:
        spec = pod_spec(props)
        for c in _containers(spec) if spec is not None else []:
            if isinstance(c.get("image"), str):
                found.add(c["image"])
    return sorted(found)


def check_signed_images(images: Iterable[str], verify: Callable[[str], object]) -> list[str]:
    """Each image verified by ``verify`` (which raises with the reason when it is not signed by the
    stack's signer): one message per refused image."""
    problems = []
    for image in images:
        try:
            verify(image)
        except InfraError as exc:  # SignatureError: unsigned, another signer, unreadable registry
            problems.append(f"image {image}: refused: {exc}")
    return problems


def check_production_signer(
    resources: Iterable[Mapping[str, Any]], instances: Iterable[str], has_signer: bool
) -> list[str]:
    """A production instance's stack names an image signer (``imageSignature``)."""
    prod = set(instances)
    if has_signer or not any(
        r.get("kind") == "Deployment" and _labels(r).get(LABEL_INSTANCE) in prod for r in resources
    ):
        return []
    return [
        "production names no image signer: set imageSignature (a cosign publicKey, or a keyless "
        "identity and issuer) so only signed images deploy (docs/supply-chain.md)"
    ]
