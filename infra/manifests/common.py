"""Declaring Kubernetes objects from plain manifests, and the labels every object carries.

Components build Kubernetes-native manifests (camelCase, exactly what ``kubectl``
would apply) with pure functions, which keeps them easy to test and lets
``render`` write the same objects as YAML. :func:`declare` hands a manifest to
the matching pulumi-kubernetes resource class: nested camelCase keys pass
through the SDK untranslated, only top-level fields use the SDK's Python names.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

#: A Kubernetes object as a mapping (apiVersion, kind, metadata, spec/data …).
Manifest = dict[str, Any]

APP_NAME = "preview-worker"
#: The job API's objects, and its ConfigMap (the retention sweep reads it too).
API_NAME = f"{APP_NAME}-api"
API_CONFIG_NAME = f"{API_NAME}-config"
PART_OF = "mobius"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_VERSION = "app.kubernetes.io/version"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANNOTATION_RELEASE_ID = "mobius.dev/release-id"
ANNOTATION_CANARY_WEIGHT = "mobius.dev/canary-weight"
ANNOTATION_CONFIG_CHECKSUM = "checksum/config"
ANNOTATION_SECRET_CHECKSUM = "checksum/secret"
#: Server-side apply takes back every field the program declares, even when someone changed it
#: by hand (``kubectl set image`` makes kubectl that field's manager, and an unforced apply then
#: fails with a field conflict). So ``pulumi up`` repairs drift of what the stack file says;
#: fields the program never declares (``spec.replicas``, the HPA's) are never forced.
ANNOTATION_PATCH_FORCE = "pulumi.com/patchForce"

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
    ("batch/v1", "CronJob"): k8s.batch.v1.CronJob,
}


def config_checksum(data: dict[str, str]) -> str:
    """sha256 of a ConfigMap's data; a pod annotation, so a config change rolls the pods."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def selector_labels(instance: str, track: str | None = None) -> dict[str, str]:
    """Labels that select the worker's pods (all tracks, or one). Never changes for a Deployment."""
    labels = {LABEL_NAME: APP_NAME, LABEL_INSTANCE: instance}
    if track is not None:
        labels["track"] = track
    return labels


def common_labels(instance: str, component: str = "worker") -> dict[str, str]:
    """The ``app.kubernetes.io/*`` labels on every object."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: instance,
        LABEL_COMPONENT: component,
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: "pulumi",
    }


def metadata(name: str, namespace: str | None, labels: dict[str, str], **extra: Any) -> Manifest:
    """Object metadata with an explicit name (no auto-naming: names are part of the contract)."""
    meta: Manifest = {"name": name, "labels": dict(labels), **extra}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def child_options(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """Options for a component's children: parented, and waiting for what the component waits
    for (Pulumi does not pass a component's ``depends_on`` to its children; here every object
    must wait for its Namespace)."""
    return pulumi.ResourceOptions(parent=parent, depends_on=opts.depends_on if opts else None)


def _py_name(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def declare(name: str, manifest: Manifest, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Register ``manifest`` as a pulumi-kubernetes resource named ``name``."""
    api, kind = manifest["apiVersion"], manifest["kind"]
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
