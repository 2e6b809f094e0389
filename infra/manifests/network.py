"""The worker's NetworkPolicy: deny by default, then open exactly what it needs.

Egress: DNS (the cluster DNS pods), Redis and the S3 endpoint (by namespace
and/or CIDR) and each allowed source host's CIDRs on its port. Ingress: the
metrics port, only from the monitoring namespace. The worker serves nothing else.
The job API's and the retention sweep's policies are built from the same rules
(:mod:`infra.manifests.job_api`, :mod:`infra.manifests.sweep`).
"""

from __future__ import annotations

from infra.config.model import StackConfig
from infra.manifests.common import Manifest, metadata, selector_labels
from worker import constants as c

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def namespace_peer(name: str) -> Manifest:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def dns_rule(cfg: StackConfig) -> Manifest:
    """Egress to the cluster DNS pods."""
    return {
        "to": [
            {
                **namespace_peer(cfg.network.dns_namespace),
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def _peers(namespace: str | None, cidrs: list[str]) -> list[Manifest]:
    peers = [namespace_peer(namespace)] if namespace is not None else []
    return peers + [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]


def redis_rule(cfg: StackConfig) -> Manifest:
    """Egress to Redis (by namespace and/or CIDR), and to its sentinels when it has them."""
    net = cfg.network
    ports = [net.redis_port] + ([net.redis_sentinel_port] if net.redis_sentinel_port else [])
    return {
        "to": _peers(net.redis_namespace, net.redis_cidrs),
        "ports": [{"protocol": "TCP", "port": port} for port in ports],
    }


def s3_rule(cfg: StackConfig) -> Manifest:
    """Egress to the S3 endpoint (by namespace and/or CIDR; the config requires one)."""
    net = cfg.network
    return {"to": _peers(net.s3_namespace, net.s3_cidrs), "ports": [{"protocol": "TCP", "port": net.s3_port}]}


def egress_rules(cfg: StackConfig) -> list[Manifest]:
    """DNS, Redis, the S3 endpoint, then one rule per allowed source host."""
    rules = [dns_rule(cfg), redis_rule(cfg), s3_rule(cfg)]
    rules += [
        {
            "to": [{"ipBlock": {"cidr": cidr}} for cidr in host.cidrs],
            "ports": [{"protocol": "TCP", "port": host.port}],
        }
        for host in cfg.source_hosts
    ]
    return rules


def policy(
    cfg: StackConfig,
    name: str,
    selector: dict[str, str],
    labels: dict[str, str],
    ingress: list[Manifest],
    egress: list[Manifest],
) -> Manifest:
    """A NetworkPolicy over the pods ``selector`` matches: only ``ingress`` in, only ``egress`` out."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(name, cfg.namespace, labels),
        "spec": {
            "podSelector": {"matchLabels": selector},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def network_policy(cfg: StackConfig, *, name: str, instance: str, labels: dict[str, str]) -> Manifest:
    """The policy over both tracks' worker pods."""
    metrics_in = {
        "from": [namespace_peer(cfg.monitoring.namespace)],
        "ports": [{"protocol": "TCP", "port": c.METRICS_PORT}],
    }
    return policy(cfg, name, selector_labels(instance), labels, [metrics_in], egress_rules(cfg))
