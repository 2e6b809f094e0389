"""A worker track's Deployment (stable or canary), as a plain manifest.

:class:`infra.components.tracks.WorkerDeployment` declares it with its autoscaler.
"""

from __future__ import annotations

from typing import Any

from infra.config.model import StackConfig
from infra.manifests.common import (
    ANNOTATION_CANARY_WEIGHT,
    ANNOTATION_CONFIG_CHECKSUM,
    ANNOTATION_RELEASE_ID,
    ANNOTATION_SECRET_CHECKSUM,
    APP_NAME,
    LABEL_VERSION,
    Manifest,
    metadata,
    selector_labels,
)
from infra.manifests.pod import SecretFiles, pod_template, version_label
from infra.manifests.scaling.canary import TrackBounds
from worker.constants import TRACK_CANARY


def deployment_name(track: str) -> str:
    """``preview-worker-stable`` / ``preview-worker-canary``."""
    return f"{APP_NAME}-{track}"


def deployment(
    cfg: StackConfig,
    *,
    instance: str,
    track: str,
    image: str,
    bounds: TrackBounds,
    labels: dict[str, str],
    service_account: str,
    env_sources: list[Manifest],
    config_checksum: str,
    secret_checksum: Any,
    secret_files: SecretFiles,
) -> Manifest:
    """The track's Deployment. Replicas are left to the HPA unless the track is scaled to 0.

    ``secret_checksum`` may be a ``pulumi.Output[str]`` (the program passes one); it only ends
    up as a pod annotation's value.
    """
    labels = {**labels, "track": track, LABEL_VERSION: version_label(image)}
    annotations: dict[str, Any] = {}
    if cfg.release_id:
        annotations[ANNOTATION_RELEASE_ID] = cfg.release_id
    # The release id is on the Deployment, never the pod template: a release that changes no pod
    # (a canary weight step) must not restart every pod of both tracks.
    pod_annotations = {
        ANNOTATION_CONFIG_CHECKSUM: config_checksum,
        ANNOTATION_SECRET_CHECKSUM: secret_checksum,
    }
    spec: Manifest = {
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": 600,
        "selector": {"matchLabels": selector_labels(instance, track)},
        # Never below the current capacity during a rollout: new pods come up before old ones drain.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": pod_template(
            cfg,
            instance=instance,
            track=track,
            image=image,
            labels=labels,
            annotations=pod_annotations,
            service_account=service_account,
            env_sources=env_sources,
            files=secret_files,
        ),
    }
    if bounds.max == 0:
        spec["replicas"] = 0
    meta_annotations = dict(annotations)
    if track == TRACK_CANARY:
        # Read by the policy pack (prod caps the weight) and by people running kubectl.
        meta_annotations[ANNOTATION_CANARY_WEIGHT] = str(cfg.effective_canary_weight)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(
            deployment_name(track),
            cfg.namespace,
            labels,
            **({"annotations": meta_annotations} if meta_annotations else {}),
        ),
        "spec": spec,
    }
