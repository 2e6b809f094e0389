"""One track of the worker (stable or canary): its Deployment and its HPA (or KEDA ScaledObject)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from infra.config.model import StackConfig, split_image
from infra.config.sections import PROVIDER_KEDA
from infra.manifests import autoscaling, scaled_object
from infra.manifests.canary import TrackBounds
from infra.manifests.common import (
    ANNOTATION_CANARY_WEIGHT,
    ANNOTATION_CONFIG_CHECKSUM,
    ANNOTATION_RELEASE_ID,
    ANNOTATION_SECRET_CHECKSUM,
    APP_NAME,
    LABEL_VERSION,
    Manifest,
    child_options,
    declare,
    metadata,
    selector_labels,
)
from infra.manifests.pod import SecretFiles, pod_template
from worker.constants import TRACK_CANARY


def deployment_name(track: str) -> str:
    """``preview-worker-stable`` / ``preview-worker-canary``."""
    return f"{APP_NAME}-{track}"


def version_label(image: str) -> str:
    """A label-safe version: the first 12 hex digits of the digest."""
    return "sha256-" + split_image(image)[1].removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class TrackArgs:
    """Inputs of :class:`WorkerDeployment`."""

    config: StackConfig
    instance: str
    track: str
    image: str
    bounds: TrackBounds
    share_percent: float
    labels: dict[str, str]
    service_account: str
    env_sources: list[Manifest]
    config_checksum: str
    secret_checksum: Any  # pulumi.Output[str]: sha256 of the secret values, not itself secret
    secret_files: SecretFiles


def deployment(args: TrackArgs) -> Manifest:
    """The track's Deployment. Replicas are left to the HPA unless the track is scaled to 0."""
    cfg, track = args.config, args.track
    labels = {**args.labels, "track": track, LABEL_VERSION: version_label(args.image)}
    annotations: dict[str, Any] = {}
    if cfg.release_id:
        annotations[ANNOTATION_RELEASE_ID] = cfg.release_id
    # The release id is on the Deployment, never the pod template: a release that changes no pod
    # (a canary weight step) must not restart every pod of both tracks.
    pod_annotations = {
        ANNOTATION_CONFIG_CHECKSUM: args.config_checksum,
        ANNOTATION_SECRET_CHECKSUM: args.secret_checksum,
    }
    spec: Manifest = {
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": 600,
        "selector": {"matchLabels": selector_labels(args.instance, track)},
        # Never below the current capacity during a rollout: new pods come up before old ones drain.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": pod_template(
            cfg,
            instance=args.instance,
            track=track,
            image=args.image,
            labels=labels,
            annotations=pod_annotations,
            service_account=args.service_account,
            env_sources=args.env_sources,
            files=args.secret_files,
        ),
    }
    if args.bounds.max == 0:
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


class WorkerDeployment(pulumi.ComponentResource):
    """A track's Deployment plus, when it runs pods, its HPA or (``provider: keda``) its ScaledObject."""

    deployment_name: str
    image: str

    def __init__(self, name: str, args: TrackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mobius:preview:Worker", name, None, opts)
        child = child_options(self, opts)
        self.deployment_name, self.image = deployment_name(args.track), args.image
        declared = declare(f"{name}-deployment", deployment(args), child)
        outputs: dict[str, Any] = {"deploymentName": self.deployment_name, "image": args.image}
        if args.bounds.min > 0:
            on_keda = args.config.autoscaling.provider == PROVIDER_KEDA
            manifest = (scaled_object.scaled_object if on_keda else autoscaling.hpa)(
                args.config,
                name=self.deployment_name,
                deployment=self.deployment_name,
                track=args.track,
                bounds=args.bounds,
                share=args.share_percent,
                labels=args.labels,
            )
            kind = "scaledobject" if on_keda else "hpa"
            low = manifest["spec"]["minReplicaCount" if on_keda else "minReplicas"]
            declare(
                f"{name}-{kind}",
                manifest,
                pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[declared])),
            )
            outputs[kind] = {"min": low, "max": args.bounds.max}
        self.register_outputs(outputs)
