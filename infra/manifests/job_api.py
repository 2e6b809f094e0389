"""The job API's manifests (``python -m worker api``): Deployment, Service, HPA, PDB, NetworkPolicy.

The API always runs the stable image: a canary split would only make sense for
the worker's job processing, and the API's routes are the contract producers
depend on, so a new build reaches them only once it is promoted to stable.
Its pods carry their own ``app.kubernetes.io/name`` (``preview-worker-api``), so
none of the worker's selectors (Service, PDB, NetworkPolicy, ServiceMonitor) match them.
"""

from __future__ import annotations

from typing import Any

from infra.config.model import StackConfig
from infra.manifests import network
from infra.manifests.common import (
    ANNOTATION_CONFIG_CHECKSUM,
    ANNOTATION_RELEASE_ID,
    ANNOTATION_SECRET_CHECKSUM,
    API_CONFIG_NAME,
    API_NAME,
    LABEL_INSTANCE,
    LABEL_NAME,
    Manifest,
    common_labels,
    metadata,
)
from infra.manifests.env import process_env
from infra.manifests.pod import (
    TMP_MOUNT,
    TMP_VOLUME,
    SecretFiles,
    hardened_container,
    hardened_pod_spec,
    identity_env,
    resources,
    spread,
)
from infra.manifests.scaling.autoscaling import cpu_metric
from worker import constants as c

CONTAINER_NAME = "api"


def api_selector(instance: str) -> dict[str, str]:
    """Labels that select the API's pods (and nothing of the worker's)."""
    return {LABEL_NAME: API_NAME, LABEL_INSTANCE: instance}


def api_labels(instance: str) -> dict[str, str]:
    """The ``app.kubernetes.io/*`` labels on every API object."""
    return {**common_labels(instance, component="api"), LABEL_NAME: API_NAME}


def api_config_data(cfg: StackConfig) -> dict[str, str]:
    """The API's non-secret env: what every process gets (the tunables, the budget…), where it listens."""
    return {**process_env(cfg), c.ENV_API_HOST: "0.0.0.0", c.ENV_API_PORT: str(c.API_PORT)}


def _tcp_probe(period: int, failures: int) -> Manifest:
    return {
        "tcpSocket": {"port": c.API_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def api_container(cfg: StackConfig, env_sources: list[Manifest], files: SecretFiles) -> Manifest:
    """The API container: the stable image with the worker's hardening, ``args: [api]``."""
    env = [*identity_env(c.TRACK_STABLE, cfg.image), *files.env]  # the release id: the Deployment's
    return hardened_container(
        CONTAINER_NAME,
        cfg.image,
        ["api"],
        ports=[{"name": c.API_PORT_NAME, "containerPort": c.API_PORT, "protocol": "TCP"}],
        envFrom=env_sources,
        env=env,
        resources=resources(cfg.api.resources),
        # Startup: up to 60 s to listen. Liveness: the socket accepts (the API has no cheap
        # liveness route). Readiness: the health route, 503 while Redis is down.
        startupProbe=_tcp_probe(period=2, failures=30),
        livenessProbe=_tcp_probe(period=10, failures=3),
        readinessProbe={
            "httpGet": {"path": c.API_HEALTH_PATH, "port": c.API_PORT_NAME},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 2,
        },
        volumeMounts=[TMP_MOUNT, *files.mounts],
    )


def api_deployment(
    cfg: StackConfig,
    instance: str,
    *,
    service_account: str,
    secret_sources: list[Manifest],
    secret_files: SecretFiles,
    config_checksum: str,
    secret_checksum: Any,
) -> Manifest:
    """The API's Deployment; replicas are the HPA's.

    ``secret_checksum`` may be a ``pulumi.Output[str]`` (the program passes one); it only ends
    up as a pod annotation's value.
    """
    labels = api_labels(instance)
    annotations = {ANNOTATION_RELEASE_ID: cfg.release_id} if cfg.release_id else {}
    env_sources = [{"configMapRef": {"name": API_CONFIG_NAME}}, *secret_sources]
    pod = hardened_pod_spec(
        cfg,
        service_account,
        [api_container(cfg, env_sources, secret_files)],
        terminationGracePeriodSeconds=c.API_GRACE_SECONDS,
        volumes=[TMP_VOLUME, *secret_files.volumes],
        topologySpreadConstraints=spread(api_selector(instance)),
    )
    # The release id stays off the pod template: a release that changes no pod (a canary weight
    # step) must not restart the API's pods.
    pod_annotations = {
        ANNOTATION_CONFIG_CHECKSUM: config_checksum,
        ANNOTATION_SECRET_CHECKSUM: secret_checksum,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(
            API_NAME, cfg.namespace, labels, **({"annotations": annotations} if annotations else {})
        ),
        "spec": {
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": api_selector(instance)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels, "annotations": pod_annotations}, "spec": pod},
        },
    }


def api_objects(cfg: StackConfig, instance: str) -> list[tuple[str, Manifest]]:
    """ConfigMap, Service, HPA, PDB and NetworkPolicy of the API (the Deployment aside)."""
    labels, selector = api_labels(instance), api_selector(instance)
    http_in = {
        "from": [network.namespace_peer(cfg.network.api_ingress_namespace)],
        "ports": [{"protocol": "TCP", "port": c.API_PORT}],
    }
    # Prometheus scrapes /metrics on the same port (the API's ServiceMonitor, observability/monitors.py).
    scrape_in = {
        "from": [network.namespace_peer(cfg.monitoring.namespace)],
        "ports": [{"protocol": "TCP", "port": c.API_PORT}],
    }
    egress = [network.dns_rule(cfg), network.redis_rule(cfg), network.s3_rule(cfg)]
    return [
        (
            "config",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata(API_CONFIG_NAME, cfg.namespace, labels),
                "data": api_config_data(cfg),
            },
        ),
        (
            "service",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(API_NAME, cfg.namespace, labels),
                "spec": {
                    "type": "ClusterIP",
                    "selector": selector,
                    "ports": [
                        {
                            "name": c.API_PORT_NAME,
                            "port": c.API_PORT,
                            "targetPort": c.API_PORT_NAME,
                            "protocol": "TCP",
                        }
                    ],
                },
            },
        ),
        (
            "hpa",
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": metadata(API_NAME, cfg.namespace, labels),
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": API_NAME},
                    "minReplicas": cfg.api.replicas.min,
                    "maxReplicas": cfg.api.replicas.max,
                    "metrics": [cpu_metric(cfg.api.cpu_target)],
                    "behavior": {
                        "scaleDown": {"stabilizationWindowSeconds": cfg.autoscaling.scale_down_window_seconds}
                    },
                },
            },
        ),
        (
            "pdb",
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": metadata(API_NAME, cfg.namespace, labels),
                # One pod at a time: a drain always proceeds, and the rest keep serving.
                "spec": {
                    "maxUnavailable": 1,
                    "selector": {"matchLabels": selector},
                    "unhealthyPodEvictionPolicy": "AlwaysAllow",
                },
            },
        ),
        ("networkpolicy", network.policy(cfg, API_NAME, selector, labels, [http_in, scrape_in], egress)),
    ]
