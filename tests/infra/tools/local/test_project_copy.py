"""A project copy binds every stack to the local cluster; the committed files keep their own."""

from __future__ import annotations

from pathlib import Path

from infra.config.model import load_stack_file
from infra.tools.local.project import project_copy


def test_every_stack_of_a_copy_is_bound_to_the_local_cluster(tmp_path: Path) -> None:
    copy = project_copy(tmp_path / "project")
    for stack in ("dev", "staging", "prod"):
        config = load_stack_file(copy / f"Pulumi.{stack}.yaml")
        assert config.cluster.is_local and config.cluster.kubeconfig is None, stack
    # the repository's own files (the copy's symlinks point into it) are unchanged
    repo = (copy / "infra").resolve().parent
    assert not load_stack_file(repo / "Pulumi.prod.yaml").cluster.is_local
