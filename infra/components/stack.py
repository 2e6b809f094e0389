"""The whole worker stack as one component: namespace, identity, config, tracks, policy, monitoring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from infra.components import outputs as out
from infra.components.api import ApiArgs, JobApi
from infra.components.declare import declare
from infra.components.monitoring import Monitoring, MonitoringArgs
from infra.components.provider import check_cluster, cluster_provider
from infra.components.secrets import SecretsArgs, WorkerSecrets, read_vault
from infra.components.tracks import TrackArgs, WorkerDeployment
from infra.config.model import StackConfig, split_image
from infra.manifests import network
from infra.manifests.common import API_NAME, APP_NAME, common_labels, config_checksum
from infra.manifests.env import config_data
from infra.manifests.namespace import CONFIG_MAP_NAME, base_objects
from infra.manifests.scaling import canary
from infra.manifests.scaling.autoscaling import pdb
from infra.manifests.sweep import SWEEP_NAME, sweep_objects
from worker import constants as c


@dataclass(frozen=True)
class StackArgs:
    """Inputs of :class:`PreviewWorkerStack`: the validated config and the installation name
    (the stack's name, which the cluster check names)."""

    config: StackConfig
    instance: str


class PreviewWorkerStack(pulumi.ComponentResource):
    """Everything one stack deploys; ``outputs`` is what ``__main__`` exports."""

    outputs: dict[str, Any]

    def __init__(self, name: str, args: StackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        cfg, instance = args.config, args.instance
        # Before registering anything: another cluster, or a Vault failure, creates nothing.
        check_cluster(cfg, instance)
        vault_values = read_vault(cfg)
        # Every child inherits the stack's own provider; none uses the ambient default one.
        provider = pulumi.ResourceOptions(provider=cluster_provider(cfg))
        super().__init__("mobius:preview:Stack", name, None, pulumi.ResourceOptions.merge(opts, provider))
        labels = common_labels(instance)
        child = pulumi.ResourceOptions(parent=self)
        data = config_data(cfg)
        ns = None
        for suffix, manifest in base_objects(cfg, instance, labels, data):
            if manifest["kind"] == "Namespace":
                if not cfg.existing_namespace:  # else the platform owns it: never created nor deleted here
                    ns = declare(f"{name}-{suffix}", manifest, child, protect=cfg.protect)
                continue
            opts_ = pulumi.ResourceOptions(parent=self, depends_on=[ns] if ns else [])
            declare(f"{name}-{suffix}", manifest, opts_, protect=cfg.protect)
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns] if ns else [])
        secrets = WorkerSecrets(f"{name}-secrets", SecretsArgs(cfg, labels, vault_values), in_ns)
        checksum = config_checksum(data)
        env_sources = [{"configMapRef": {"name": CONFIG_MAP_NAME}}, *secrets.env_sources]
        weight = cfg.effective_canary_weight
        split = canary.plan(cfg.replicas.min, cfg.replicas.max, weight)
        images = {c.TRACK_STABLE: cfg.image, c.TRACK_CANARY: cfg.canary.image or cfg.image}
        shares = {c.TRACK_STABLE: 100.0 - weight, c.TRACK_CANARY: float(weight)}
        tracks: dict[str, WorkerDeployment] = {}
        for track in c.TRACKS:
            bounds = split.bounds(track)
            if track == c.TRACK_CANARY and bounds.max == 0:
                continue
            targs = TrackArgs(
                cfg,
                instance,
                track,
                images[track],
                bounds,
                shares[track],
                labels,
                APP_NAME,
                env_sources,
                checksum,
                secrets.checksum,
                secrets.files,
            )
            tracks[track] = WorkerDeployment(f"{name}-{track}", targs, in_ns)
        declare(f"{name}-pdb", pdb(cfg, name=APP_NAME, instance=instance, plan=split, labels=labels), in_ns)
        netpol = network.network_policy(cfg, name=APP_NAME, instance=instance, labels=labels)
        declare(f"{name}-networkpolicy", netpol, in_ns)
        # The job API and the retention sweep read the store credentials from the same Secret(s).
        api_args = ApiArgs(cfg, instance, APP_NAME, secrets.env_sources, secrets.checksum, secrets.files)
        JobApi(f"{name}-api", api_args, in_ns)
        sweep = sweep_objects(cfg, instance, APP_NAME, secrets.env_sources, secrets.files)
        for suffix, manifest in sweep:
            declare(f"{name}-{suffix}", manifest, in_ns)
        Monitoring(f"{name}-monitoring", MonitoringArgs(cfg, instance, APP_NAME, labels), in_ns)
        self.outputs = {
            out.NAMESPACE: cfg.namespace,
            out.DEPLOYMENTS: {t: w.deployment_name for t, w in tracks.items()},
            out.DIGESTS: {t: split_image(w.image)[1] for t, w in tracks.items()},
            out.CANARY_WEIGHT: weight,
            out.REPLICA_SPLIT: {
                "min": {"stable": split.minimum.stable, "canary": split.minimum.canary},
                "max": {"stable": split.maximum.stable, "canary": split.maximum.canary},
                "canaryPercent": round(split.minimum.canary_percent, 1),
            },
            out.CONFIG_CHECKSUM: checksum,
            out.API: API_NAME,
            out.AUTOSCALER: cfg.autoscaling.provider,
            # KEDA may scale a track to 0 pods: `python -m infra verify` accepts 0/0 then.
            out.SCALE_TO_ZERO: cfg.autoscaling.keda is not None and cfg.autoscaling.keda.scale_to_zero,
            out.RETENTION_SWEEP: SWEEP_NAME if sweep else "",
            out.RELEASE_ID: cfg.release_id or "",
        }
        self.register_outputs(self.outputs)
