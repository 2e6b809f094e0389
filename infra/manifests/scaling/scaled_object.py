"""KEDA's ScaledObject per track (``autoscaling.provider: keda``).

KEDA's operator reads the queue depth from Prometheus itself, with the query of
:func:`depth_query` (this stack's namespace and queue, ``max`` over pods: every pod
reports the same depth), and creates and owns each track's HPA. Each track's
``threshold`` is its share of ``queueDepthTarget``, as in the adapter mode
(:func:`infra.manifests.scaling.autoscaling.per_track_threshold`), so the canary ratio holds.

With ``keda.scaleToZero`` a track's ``minReplicaCount`` is 0: KEDA scales it to zero once
no job has waited for ``cooldownPeriodSeconds``, and back to at least one as soon as more
than ``activationThreshold`` jobs wait. The job API's pods (always running, scraped by their
own ServiceMonitor) export the same ``preview_queue_jobs`` series, so the depth is known
while no worker runs. ``ignoreNullValues: false``: a query with no series (Prometheus lost
every target) is an error, on which KEDA keeps the current replicas, never "0 waiting".
"""

from __future__ import annotations

from infra import promql
from infra.config.model import StackConfig
from infra.manifests.common import Manifest, metadata
from infra.manifests.scaling.autoscaling import per_track_threshold, scale_down_behavior
from infra.manifests.scaling.canary import TrackBounds

API_VERSION = "keda.sh/v1alpha1"
KIND = "ScaledObject"
TRIGGER_NAME = "queue-depth"


def depth_query(cfg: StackConfig) -> str:
    """The PromQL KEDA runs: this stack's waiting jobs (plain, prioritised and paused)."""
    return promql.waiting_jobs(cfg.namespace, cfg.worker.queue_name)


def scaled_object(
    cfg: StackConfig,
    *,
    name: str,
    deployment: str,
    track: str,
    bounds: TrackBounds,
    share: float,
    labels: dict[str, str],
) -> Manifest:
    """One track's ScaledObject; KEDA names the HPA it creates after the Deployment."""
    keda, depth = cfg.autoscaling.keda, cfg.autoscaling.queue_depth_target
    if keda is None or depth is None:  # the config model refuses provider keda without both
        raise ValueError("a ScaledObject needs autoscaling.keda and autoscaling.queueDepthTarget")
    triggers: list[Manifest] = [
        {
            "type": "prometheus",
            "name": TRIGGER_NAME,
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": keda.prometheus_url,
                "query": depth_query(cfg),
                "threshold": per_track_threshold(depth, share),
                "activationThreshold": str(keda.activation_threshold),
                "ignoreNullValues": "false",
            },
        }
    ]
    if cfg.autoscaling.cpu_target is not None:
        triggers.append(
            {
                "type": "cpu",
                "metricType": "Utilization",
                "metadata": {"value": str(cfg.autoscaling.cpu_target)},
            }
        )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata(name, cfg.namespace, {**labels, "track": track}),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "pollingInterval": keda.polling_interval_seconds,
            "cooldownPeriod": keda.cooldown_period_seconds,
            "minReplicaCount": 0 if keda.scale_to_zero else bounds.min,
            "maxReplicaCount": bounds.max,
            "advanced": {
                "horizontalPodAutoscalerConfig": {"name": deployment, "behavior": scale_down_behavior(cfg)}
            },
            "triggers": triggers,
        },
    }
