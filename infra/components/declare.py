"""Declaring plain Kubernetes manifests as pulumi-kubernetes resources.

The builders in :mod:`infra.manifests` return Kubernetes-native manifests (camelCase,
exactly what ``kubectl`` would apply) and import no Pulumi. :func:`declare` hands one
to the matching pulumi-kubernetes resource class: nested camelCase keys pass through
the SDK untranslated, only top-level fields use the SDK's Python names.
"""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.manifests.common import ANNOTATION_PATCH_FORCE, HOLDS_STATE, Manifest

_BUILTIN: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("networking.k8s.io/v1", "Ingress"): k8s.networking.v1.Ingress,
    ("batch/v1", "CronJob"): k8s.batch.v1.CronJob,
}


def child_options(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """Options for a component's children: parented, and waiting for what the component waits
    for (Pulumi does not pass a component's ``depends_on`` to its children; here every object
    must wait for its Namespace)."""
    return pulumi.ResourceOptions(parent=parent, depends_on=opts.depends_on if opts else None)


def ready_within(seconds: float) -> pulumi.ResourceOptions:
    """Options for a Deployment: the engine waits ``seconds`` for it to be Available, then fails
    with its pods' reason (the stack's ``readyTimeout``; the engine's default is 10 minutes)."""
    timeout = f"{int(seconds)}s"
    return pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout))


def _py_name(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def declare(
    name: str, manifest: Manifest, opts: pulumi.ResourceOptions, *, protect: bool = False
) -> pulumi.CustomResource:
    """Register ``manifest`` as a pulumi-kubernetes resource named ``name``.

    With ``protect`` (the stack's ``protect`` setting) an object of a kind in ``HOLDS_STATE`` is
    protected: the engine refuses to delete it.
    """
    api, kind = manifest["apiVersion"], manifest["kind"]
    if protect and kind in HOLDS_STATE:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=True))
    meta = manifest["metadata"]
    forced = {**manifest, "metadata": {**meta, "annotations": {**meta.get("annotations", {}),
                                                                ANNOTATION_PATCH_FORCE: "true"}}}  # fmt: skip
    body = {_py_name(k): v for k, v in forced.items() if k not in ("apiVersion", "kind")}
    cls = _BUILTIN.get((api, kind))
    if cls is None:
        resource: pulumi.CustomResource = k8s.apiextensions.CustomResource(
            name, api_version=api, kind=kind, opts=opts, **body
        )
        return resource
    declared: pulumi.CustomResource = cls(name, opts=opts, **body)
    return declared
