"""Reading a cluster's identity with the real ``kubectl``: a wrong kubeconfig is a TargetError.

The positive path (the real local cluster) is proved by ``tests/e2e/test_engine_target.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.cluster_identity import read_cluster
from infra.config.sections.cluster_target import ClusterTarget
from infra.errors import TargetError
from infra.tools.local.toolchain.build import bin_dir

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: nobody, user: {token: not-a-secret}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]
current-context: nowhere
"""


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    kubectl = bin_dir() / "kubectl"
    if not kubectl.exists():
        pytest.fail(f"{kubectl} is not built; run `python -m infra local bootstrap`")
    monkeypatch.setenv("PATH", f"{bin_dir()}:/usr/bin:/bin")


def test_an_unreachable_api_server_is_a_target_error_with_the_hint(on_path: None, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG)
    started = time.monotonic()
    with pytest.raises(TargetError) as raised:
        read_cluster(ClusterTarget(identity="local", kubeconfig=str(config)))
    assert "cluster.kubeconfig / cluster.context" in str(raised.value)
    assert "not-a-secret" not in str(raised.value)
    assert time.monotonic() - started < 30


def test_a_missing_context_is_a_target_error(on_path: None, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG)
    with pytest.raises(TargetError, match="context"):
        read_cluster(ClusterTarget(identity="local", kubeconfig=str(config), context="prod-eu"))
