"""Talking to the local API server: health probes, kubectl, the fake node, the CRDs."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from infra import runner
from infra.errors import KubeError
from infra.tools.local.cluster.certs import Pki
from infra.tools.local.toolchain.build import tool_path
from infra.tools.local.toolchain.versions import tool

FAKE_NODE = "kwok-node-0"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
CRD_DIR = Path(__file__).resolve().parents[3] / "crds"


def tls_context(pki: Pki) -> ssl.SSLContext:
    """A client TLS context trusting the local CA and presenting the admin cert."""
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return context


def wait_until(check: Callable[[], bool], what: str, timeout: float, on_fail: Callable[[], str]) -> float:
    """Poll ``check`` every 0.2 s until it is true; return the seconds waited or raise with context."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise KubeError(f"{what} not ready after {timeout:.0f}s\n{on_fail()}")


def http_ok(url: str, context: ssl.SSLContext | None = None, expect: str | None = None) -> bool:
    """True if GET ``url`` answers 200 (and its body contains ``expect``, when given)."""
    try:
        response = httpx.get(url, verify=context if context is not None else True, timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and (expect is None or expect in response.text)


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run the built kubectl against the local cluster; return stdout, raise with stderr on failure."""
    cmd = [str(tool_path(tool("kubectl"))), f"--kubeconfig={kubeconfig}", *args]
    return runner.run(cmd, error=KubeError, stdin=stdin, timeout=120, check=check)


def fake_node(name: str = FAKE_NODE) -> dict[str, Any]:
    """A Node that KWOK manages (by annotation): it reports Ready and 'runs' any pod bound to it."""
    # ephemeral-storage too: every container of the stacks requests some, and a node without it
    # in its capacity fits none of them.
    resources = {"cpu": "32", "memory": "256Gi", "ephemeral-storage": "500Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {"allocatable": resources, "capacity": resources},
    }


def ensure_node(kubeconfig: Path) -> None:
    """Create (or keep) the fake node, with its capacity as :func:`fake_node` says (status too)."""
    node = fake_node()
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=json.dumps(node))
    kubectl(kubeconfig, "patch", "node", node["metadata"]["name"], "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": node["status"]}))  # fmt: skip


def node_ready(kubeconfig: Path, name: str = FAKE_NODE) -> bool:
    """True once the node's Ready condition is True (KWOK sets it)."""
    out = kubectl(
        kubeconfig, "get", "node", name, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        check=False,
    )  # fmt: skip
    return out.strip() == "True"


def crd_files(folder: Path = CRD_DIR) -> list[Path]:
    """The CRD manifests the program uses (``infra/crds/*.yaml``), sorted."""
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def install_crds(kubeconfig: Path, files: list[Path]) -> list[str]:
    """Apply the CRDs server-side and wait until each is Established; return their names."""
    if not files:
        return []
    args = ["apply", "--server-side", "--force-conflicts", "-o", "name"]
    for path in files:
        args += ["-f", str(path)]
    names = [line.strip() for line in kubectl(kubeconfig, *args).splitlines() if line.strip()]
    crds = [n for n in names if n.startswith("customresourcedefinition")]
    if crds:
        kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", *crds)
    return crds
