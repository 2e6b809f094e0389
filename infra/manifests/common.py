"""The names, labels and annotations every manifest shares, and the metadata helpers.

Every module of :mod:`infra.manifests` builds Kubernetes-native manifests (camelCase,
exactly what ``kubectl`` would apply) with pure functions and imports no Pulumi, which
keeps them easy to test and lets the snapshot tool write the same objects as YAML.
:func:`infra.components.declare.declare` turns one into a Pulumi resource.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

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
#: Kinds whose loss is not repaired by the next ``up``: the Namespace (deleting it deletes all
#: it holds), the identities others trust (ServiceAccounts: Vault roles name them) and the
#: secrets. A stack with ``protect: true`` protects these (:func:`infra.components.declare.declare`).
HOLDS_STATE = frozenset({"Namespace", "ServiceAccount", "Secret", "ExternalSecret", "SecretStore"})


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
