"""The worker's pod template: hardening, probes, volumes, env, topology spread.

Pure functions of the config; :mod:`infra.manifests.worker_deployment` wraps the result in a Deployment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from infra.config.fields.quantities import quantity
from infra.config.model import Resources, StackConfig, split_image
from infra.manifests.common import Manifest, selector_labels
from worker import constants as c

#: The image's fixed non-root user (see the Dockerfile).
RUN_AS_UID = 10001
DATA_DIR = "/data"
TMP_DIR = "/tmp"
CONTAINER_NAME = "worker"
#: Seconds Kubernetes waits after SIGTERM beyond the worker's own drain period.
GRACE_MARGIN_SECONDS = 15


def termination_grace_seconds(cfg: StackConfig) -> int:
    """Strictly longer than the worker's drain, so a drain never gets SIGKILLed."""
    return math.ceil(cfg.worker.drain_seconds) + GRACE_MARGIN_SECONDS


def _probe(path: str, period: int, failures: int, timeout: int = 2) -> Manifest:
    return {
        "httpGet": {"path": path, "port": c.METRICS_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


#: The container-level hardening every pod of the stack shares (worker, API, retention sweep).
CONTAINER_SECURITY: Manifest = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_UID,
    "runAsGroup": RUN_AS_UID,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
#: The pod-level hardening, ditto.
POD_SECURITY: Manifest = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_UID,
    "runAsGroup": RUN_AS_UID,
    "fsGroup": RUN_AS_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
#: Scratch space: the root filesystem is read-only.
TMP_VOLUME: Manifest = {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
TMP_MOUNT: Manifest = {"name": "tmp", "mountPath": TMP_DIR}


@dataclass(frozen=True)
class SecretFiles:
    """A Secret mounted as files (``PREVIEW_SECRETS_DIR``): its volume, its mount, the env var naming it.

    Env vars from a Secret never change in a running container; files of a mounted Secret do,
    and the worker re-reads them (worker/process/secret_files.py), so a rotation needs no restart.
    """

    volumes: list[Manifest] = field(default_factory=list)
    mounts: list[Manifest] = field(default_factory=list)
    env: list[Manifest] = field(default_factory=list)


#: The render budget on disk: the worker's ``data`` emptyDir, where sources and renditions are
#: staged. Its sizeLimit and the worker's ephemeral-storage come from this one value.
RENDER_DISK = "1Gi"
#: What a container writes outside its volumes: logs (the root filesystem is read-only).
LOG_DISK = "128Mi"
DATA_VOLUME: Manifest = {"name": "data", "emptyDir": {"sizeLimit": RENDER_DISK}}


def _add(a: str, b: str) -> str:
    """Two binary quantities (``1Gi`` + ``128Mi``) as one, in Mi."""
    return f"{int((quantity(a, 'memory') + quantity(b, 'memory')) // 2**20)}Mi"


def resources(res: Resources, disk: str | None = None) -> Manifest:
    """Requests and limits, both always set; ephemeral-storage for ``disk`` of volumes plus logs.

    The scheduler places a pod only where its disk fits, and the kubelet evicts it, rather than
    the node filling up, when a render writes more.
    """
    storage = _add(disk, LOG_DISK) if disk else LOG_DISK
    return {
        "requests": {"cpu": res.requests.cpu, "memory": res.requests.memory, "ephemeral-storage": storage},
        "limits": {"cpu": res.limits.cpu, "memory": res.limits.memory, "ephemeral-storage": storage},
    }


def hardened_container(name: str, image: str, args: list[str], **fields: Any) -> Manifest:
    """A container with the shared hardening; ``fields`` add ports, env, probes, mounts …"""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        **fields,
        "securityContext": dict(CONTAINER_SECURITY),
    }


def hardened_pod_spec(
    cfg: StackConfig, service_account: Any, containers: list[Manifest], **fields: Any
) -> Manifest:
    """A pod spec with the shared hardening, no API token, the stack's image pull secrets and its
    ``scheduling`` (node selector, tolerations).

    ``fields`` add volumes, grace period, ….
    """
    names = cfg.image_pull_secrets
    pull = {"imagePullSecrets": [{"name": n} for n in names]} if names else {}
    return {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "securityContext": dict(POD_SECURITY),
        **pull,
        **cfg.scheduling.pod_fields(),
        "containers": containers,
        **fields,
    }


def version_label(image: str) -> str:
    """A label-safe version: the first 12 hex digits of the digest (``sha256-0123456789ab``)."""
    return "sha256-" + split_image(image)[1].removeprefix("sha256:")[:12]


def identity_env(track: str, image: str) -> list[Manifest]:
    """What a process exports as the ``track`` and ``release`` labels of every series.

    The release is the image's :func:`version_label`: it changes only with the image, which
    restarts the pods anyway, so a release that changes no pod (a canary weight step) still
    restarts none.
    """
    return [{"name": c.ENV_TRACK, "value": track}, {"name": c.ENV_RELEASE, "value": version_label(image)}]


def container(
    cfg: StackConfig, track: str, image: str, env_sources: list[Manifest], files: SecretFiles
) -> Manifest:
    """The worker container: pinned image, limits, probes, no privileges, read-only root."""
    # Only what changes the pod goes into the template: the release id lives on the Deployment,
    # so a release that changes no pod (a canary weight step) restarts none.
    env = [*identity_env(track, image), *files.env]
    return hardened_container(
        CONTAINER_NAME,
        image,
        ["run"],
        ports=[{"name": c.METRICS_PORT_NAME, "containerPort": c.METRICS_PORT, "protocol": "TCP"}],
        envFrom=env_sources,
        env=env,
        resources=resources(cfg.resources, disk=RENDER_DISK),
        # Startup gives the process up to 60 s; liveness is cheap, readiness pings Redis.
        startupProbe=_probe(c.LIVENESS_PATH, period=2, failures=30),
        livenessProbe=_probe(c.LIVENESS_PATH, period=10, failures=3),
        readinessProbe=_probe(c.READINESS_PATH, period=5, failures=2),
        # The root filesystem is read-only: artifacts go to DATA_DIR, scratch files to /tmp.
        volumeMounts=[{"name": "data", "mountPath": DATA_DIR}, TMP_MOUNT, *files.mounts],
    )


def topology_spread(instance: str, track: str) -> list[Manifest]:
    """Spread each track's pods over zones and nodes; prefer, never block scheduling."""
    return spread(selector_labels(instance, track))


def spread(match_labels: dict[str, str]) -> list[Manifest]:
    """Spread the pods ``match_labels`` selects over zones and nodes (never blocks scheduling)."""
    selector = {"matchLabels": match_labels}
    return [
        {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector}
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def pod_template(
    cfg: StackConfig,
    *,
    instance: str,
    track: str,
    image: str,
    labels: dict[str, str],
    annotations: dict[str, Any],
    service_account: Any,
    env_sources: list[Manifest],
    files: SecretFiles,
) -> Manifest:
    """The pod template of one track's Deployment."""
    spec = hardened_pod_spec(
        cfg,
        service_account,
        [container(cfg, track, image, env_sources, files)],
        terminationGracePeriodSeconds=termination_grace_seconds(cfg),
        volumes=[DATA_VOLUME, TMP_VOLUME, *files.volumes],
        topologySpreadConstraints=topology_spread(instance, track),
    )
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}
