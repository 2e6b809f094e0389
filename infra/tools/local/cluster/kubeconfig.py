"""The admin kubeconfig for the local cluster (file paths, not embedded keys)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from infra.tools.local.cluster.certs import Pki

CONTEXT = "mobius-local"


def render(server: str, pki: Pki, client: tuple[Path, Path] | None = None) -> dict[str, Any]:
    """The kubeconfig mapping: one cluster, one user (admin, or ``client``'s cert and key), one context."""
    cert, key = client or (pki.admin_cert, pki.admin_key)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)}}
        ],
        "users": [
            {
                "name": CONTEXT,
                "user": {"client-certificate": str(cert), "client-key": str(key)},
            }
        ],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write(path: Path, server: str, pki: Pki, client: tuple[Path, Path] | None = None) -> Path:
    """Write the kubeconfig to ``path`` with mode 0600 (it names a private key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(render(server, pki, client), sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path
