"""Where the local environment keeps its files, and the loopback ports it uses.

The toolchain is cached outside the work tree, keyed by version, so every
clone on the machine shares it; the cluster's state (certificates, etcd data,
logs, pid files, kubeconfig, the Pulumi file backend) lives in the git-ignored
``.local/`` folder of the work tree it was started from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
GOMOD_DIR = Path(__file__).resolve().parent / "toolchain" / "gomod"

ENV_TOOLCHAIN_CACHE = "MOBIUS_TOOLCHAIN_CACHE"
ENV_LOCAL_STATE = "MOBIUS_LOCAL_STATE"

# Loopback ports, away from the defaults so a developer's own etcd or cluster
# on the same machine does not collide with this one.
ETCD_CLIENT_PORT = 23790
ETCD_PEER_PORT = 23800
APISERVER_PORT = 16443
HOST = "127.0.0.1"


def pulumi_home() -> Path:
    """``PULUMI_HOME`` for the local engine: its plugins live beside the toolchain."""
    return toolchain_cache() / "pulumi-home"


def toolchain_cache() -> Path:
    """Root of the version-keyed toolchain cache."""
    env = os.environ.get(ENV_TOOLCHAIN_CACHE)
    if env:
        return Path(env)
    return Path.home() / ".cache" / "mobius-preview-worker" / "toolchain"


@dataclass(frozen=True)
class StateDir:
    """The files of one local cluster, all under one root folder."""

    root: Path

    @classmethod
    def default(cls) -> StateDir:
        """``$MOBIUS_LOCAL_STATE`` or ``<repo>/.local/cluster``."""
        env = os.environ.get(ENV_LOCAL_STATE)
        return cls(Path(env) if env else REPO_ROOT / ".local" / "cluster")

    @property
    def pki(self) -> Path:
        """Certificates and the service-account key pair."""
        return self.root / "pki"

    @property
    def etcd_data(self) -> Path:
        """etcd's data directory."""
        return self.root / "etcd"

    @property
    def logs(self) -> Path:
        """One log file per supervised process."""
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        """One pid file per supervised process."""
        return self.root / "pids"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig for this cluster."""
        return self.root / "kubeconfig"

    @property
    def pulumi_backend(self) -> Path:
        """The Pulumi file backend's folder (``pulumi login file://…``)."""
        return self.root / "pulumi-state"
