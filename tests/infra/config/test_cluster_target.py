"""The ``cluster`` section: every stack names its cluster; bad values are refused naming the key."""

from __future__ import annotations

from typing import Any

import pytest
from test_model import minimal, problems

from infra.config.model import load_stack_file, parse_config
from infra.tools.local.layout import REPO_ROOT

UID = "3f1c2a9e-5b7d-4e21-9c0a-6d8e2f4b1a73"


def test_a_stack_without_a_cluster_is_refused() -> None:
    raw = minimal()
    del raw["cluster"]
    assert problems(raw) == ["cluster.identity: required"]


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        ({"identity": "prod"}, "cluster.identity: must be the UID of the cluster's kube-system Namespace"),
        ({"identity": UID.upper()}, "cluster.identity: must be the UID"),
        ({"identity": UID + "\n"}, "cluster.identity: must be the UID"),
        ({"identity": UID, "server": "k8s.example:6443"}, "cluster.server: must be the API server's URL"),
        ({"identity": UID, "context": "two words"}, "cluster.context: must be a kubeconfig context name"),
        ({"identity": UID, "kubeconfig": " "}, "cluster.kubeconfig: must be the path of a kubeconfig file"),
        ({"identity": UID, "cluster": "x"}, "cluster.cluster: unknown key"),
    ],
)
def test_a_bad_cluster_value_is_refused_naming_the_key(cluster: dict[str, Any], expected: str) -> None:
    found = problems(minimal(cluster=cluster))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_full_target_is_kept() -> None:
    cluster = {"identity": UID, "kubeconfig": "~/.kube/x", "context": "c", "server": "https://k:6443/"}
    target = parse_config(minimal(cluster=cluster)).cluster
    assert (target.identity, target.kubeconfig, target.context, target.server) == (
        UID, "~/.kube/x", "c", "https://k:6443",
    )  # fmt: skip
    assert not target.is_local


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_staging_and_prod_name_a_real_cluster(stack: str) -> None:
    target = load_stack_file(REPO_ROOT / f"Pulumi.{stack}.yaml").cluster
    assert not target.is_local and target.server and target.context


def test_dev_is_the_local_cluster() -> None:
    assert load_stack_file(REPO_ROOT / "Pulumi.dev.yaml").cluster.is_local
