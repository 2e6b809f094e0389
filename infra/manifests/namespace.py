"""The objects every worker pod of a stack shares: its Namespace, ServiceAccount, ConfigMap, Service."""

from __future__ import annotations

from infra.config.model import StackConfig
from infra.manifests.common import APP_NAME, Manifest, metadata, selector_labels
from worker import constants as c

CONFIG_MAP_NAME = f"{APP_NAME}-config"


def base_objects(
    cfg: StackConfig, instance: str, labels: dict[str, str], config: dict[str, str]
) -> list[tuple[str, Manifest]]:
    """Namespace (restricted Pod Security), ServiceAccount, ConfigMap (``config``, from
    :func:`infra.manifests.env.config_data`) and the metrics Service."""
    ns_labels = {**labels, **{f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "warn")}}
    return [
        (
            "namespace",
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": metadata(cfg.namespace, None, ns_labels),
            },
        ),
        (
            "serviceaccount",
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": metadata(APP_NAME, cfg.namespace, labels),
                "automountServiceAccountToken": False,
            },
        ),
        (
            "config",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata(CONFIG_MAP_NAME, cfg.namespace, labels),
                "data": config,
            },
        ),
        (
            "service",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(APP_NAME, cfg.namespace, labels),
                "spec": {
                    "type": "ClusterIP",
                    "selector": selector_labels(instance),
                    "ports": [
                        {
                            "name": c.METRICS_PORT_NAME,
                            "port": c.METRICS_PORT,
                            "targetPort": c.METRICS_PORT_NAME,
                            "protocol": "TCP",
                        }
                    ],
                },
            },
        ),
    ]
