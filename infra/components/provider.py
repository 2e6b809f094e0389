"""The stack's one Kubernetes provider: built from the ``cluster`` config, after checking the cluster.

Every Kubernetes object of the stack is declared through this provider (it is set on the top
component, whose children inherit it); nothing uses Pulumi's default provider, which would
follow whatever ``KUBECONFIG`` the shell happens to hold.
"""

from __future__ import annotations

import os

import pulumi
import pulumi_kubernetes as k8s

from infra import cluster_identity
from infra.config.model import StackConfig
from infra.errors import TargetError

#: The provider's resource name: part of the contract, like every resource name (renaming it
#: would make Pulumi compare every object against a new provider).
PROVIDER_NAME = "preview-worker-cluster"


class EngineTargetError(TargetError, pulumi.RunError):
    """A TargetError the language host reports as a clean program failure (no traceback)."""


def check_cluster(cfg: StackConfig, stack: str) -> None:
    """Raise (before anything is registered) unless the stack's kubeconfig reaches its cluster."""
    try:
        cluster_identity.check(cfg.cluster, stack)
    except TargetError as exc:
        raise EngineTargetError(str(exc)) from None


def cluster_provider(cfg: StackConfig) -> k8s.Provider:
    """The provider for the stack's cluster (call :func:`check_cluster` first)."""
    target = cfg.cluster
    kubeconfig = os.path.expanduser(target.kubeconfig) if target.kubeconfig else None
    return k8s.Provider(PROVIDER_NAME, kubeconfig=kubeconfig, context=target.context)
