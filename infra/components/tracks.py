"""One track of the worker (stable or canary): its Deployment and its HPA (or KEDA ScaledObject)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from infra.components.declare import child_options, declare, ready_within
from infra.config.model import StackConfig
from infra.config.sections.autoscaling_config import PROVIDER_KEDA
from infra.manifests.common import Manifest
from infra.manifests.pod import SecretFiles
from infra.manifests.scaling import autoscaling, scaled_object
from infra.manifests.scaling.canary import TrackBounds
from infra.manifests.worker_deployment import deployment, deployment_name


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


class WorkerDeployment(pulumi.ComponentResource):
    """A track's Deployment plus, when it runs pods, its HPA or (``provider: keda``) its ScaledObject."""

    deployment_name: str
    image: str

    def __init__(self, name: str, args: TrackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mobius:preview:Worker", name, None, opts)
        child = child_options(self, opts)
        self.deployment_name, self.image = deployment_name(args.track), args.image
        manifest = deployment(
            args.config,
            instance=args.instance,
            track=args.track,
            image=args.image,
            bounds=args.bounds,
            labels=args.labels,
            service_account=args.service_account,
            env_sources=args.env_sources,
            config_checksum=args.config_checksum,
            secret_checksum=args.secret_checksum,
            secret_files=args.secret_files,
        )
        timed = pulumi.ResourceOptions.merge(child, ready_within(args.config.ready_timeout_seconds))
        declared = declare(f"{name}-deployment", manifest, timed)
        outputs: dict[str, Any] = {"deploymentName": self.deployment_name, "image": args.image}
        if args.bounds.min > 0:
            on_keda = args.config.autoscaling.provider == PROVIDER_KEDA
            scaler = (scaled_object.scaled_object if on_keda else autoscaling.hpa)(
                args.config,
                name=self.deployment_name,
                deployment=self.deployment_name,
                track=args.track,
                bounds=args.bounds,
                share=args.share_percent,
                labels=args.labels,
            )
            kind = "scaledobject" if on_keda else "hpa"
            low = scaler["spec"]["minReplicaCount" if on_keda else "minReplicas"]
            declare(
                f"{name}-{kind}",
                scaler,
                pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[declared])),
            )
            outputs[kind] = {"min": low, "max": args.bounds.max}
        self.register_outputs(outputs)
