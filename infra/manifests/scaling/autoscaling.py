"""HorizontalPodAutoscaler per track and the PodDisruptionBudget over both.

Each track's HPA gets its share of ``replicas.min``/``max`` (:mod:`infra.manifests.scaling.canary`),
so scaling cannot drown the canary ratio. With ``autoscaling.queueDepthTarget``
the HPA also scales on the queue's waiting jobs (prioritised and paused ones
included), read as an External metric of the stack's own namespace and queue
(served from Prometheus by prometheus-adapter, :mod:`~infra.manifests.scaling.adapter`). An External
metric with an
``AverageValue`` target is divided by the track's own pod count, so each track's
target is scaled by its share: both tracks then want the same ratio of pods.
"""

from __future__ import annotations

from infra.config.model import StackConfig
from infra.manifests.common import Manifest, metadata, selector_labels
from infra.manifests.scaling.canary import Plan, TrackBounds
from worker import constants as c


def queue_selector(cfg: StackConfig) -> dict[str, str]:
    """The labels an HPA picks its queue's waiting jobs by (the adapter adds the namespace)."""
    return {c.LABEL_STATE: c.STATE_WAITING, c.LABEL_QUEUE: cfg.worker.queue_name}


def _per_track_milli(target: int, share_percent: float) -> int:
    return round(target * 100_000 / share_percent)


def per_track_queue_target(target: int, share_percent: float) -> str:
    """The AverageValue (a quantity) that gives a track ``share_percent`` of the pods."""
    milli = _per_track_milli(target, share_percent)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def per_track_threshold(target: int, share_percent: float) -> str:
    """The same per-track target as a decimal (KEDA's trigger ``threshold``): ``55.556``, ``500``."""
    whole, milli = divmod(_per_track_milli(target, share_percent), 1000)
    return str(whole) if milli == 0 else f"{whole}.{milli:03d}".rstrip("0")


def scale_down_behavior(cfg: StackConfig) -> Manifest:
    """Scale down slowly: each removed pod drains its jobs first."""
    return {
        "scaleDown": {
            "stabilizationWindowSeconds": cfg.autoscaling.scale_down_window_seconds,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        }
    }


def cpu_metric(target: int) -> Manifest:
    """The HPA metric for average CPU utilisation."""
    return {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}},
    }


def hpa(
    cfg: StackConfig,
    *,
    name: str,
    deployment: str,
    track: str,
    bounds: TrackBounds,
    share: float,
    labels: dict[str, str],
) -> Manifest:
    """The autoscaling/v2 HPA of one track's Deployment."""
    metrics: list[Manifest] = []
    if cfg.autoscaling.cpu_target is not None:
        metrics.append(cpu_metric(cfg.autoscaling.cpu_target))
    depth = cfg.autoscaling.queue_depth_target
    if depth is not None:
        metrics.append(
            {
                "type": "External",
                "external": {
                    "metric": {
                        "name": c.METRIC_QUEUE_DEPTH,
                        "selector": {"matchLabels": queue_selector(cfg)},
                    },
                    "target": {"type": "AverageValue", "averageValue": per_track_queue_target(depth, share)},
                },
            }
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, cfg.namespace, {**labels, "track": track}),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": bounds.min,
            "maxReplicas": bounds.max,
            "metrics": metrics,
            "behavior": scale_down_behavior(cfg),
        },
    }


def pdb_max_unavailable(plan: Plan) -> int:
    """At least 1, so a drain can always proceed; a quarter of the minimum for larger pools."""
    return max(1, plan.minimum.total // 4)


def pdb(cfg: StackConfig, *, name: str, instance: str, plan: Plan, labels: dict[str, str]) -> Manifest:
    """A PDB over both tracks: maxUnavailable >= 1 never blocks a node drain, and since
    it counts pods rather than demanding a minimum it never fights the HPA's minimums."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(name, cfg.namespace, labels),
        "spec": {
            "maxUnavailable": pdb_max_unavailable(plan),
            "selector": {"matchLabels": selector_labels(instance)},
            # Evicting a pod that never became ready cannot hurt availability.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
