"""The docs' blocks that need the local cluster, run as written (group ``local-cluster``).

The README's "``pulumi preview`` and ``up`` by hand" block runs line by line in one shell, in a
scratch copy of the project, on this session's cluster. Two things differ from a person's
terminal, both named here: ``MOBIUS_LOCAL_STATE`` points ``local up``/``local env`` at the
session's cluster (so ``local up`` resumes it), and ``PULUMI_SKIP_CONFIRMATIONS`` answers the
prompts of ``up`` and ``destroy`` that a terminal would show (a test has no TTY).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from infra.tools.local import layout
from infra.tools.local.cluster import control_plane
from infra.tools.local.project import project_copy
from tests.doc_commands import group

pytestmark = pytest.mark.timeout(900)


def test_the_readme_by_hand_block_previews_deploys_checks_drift_and_destroys(
    local_cluster: control_plane.Cluster, tmp_path: Path
) -> None:
    (block,) = group("local-cluster")
    folder = project_copy(tmp_path / "project")
    script = "set -euo pipefail\n" + "\n".join(
        f"echo '+ {i}'; {line}" for i, line in enumerate(block.commands())
    )
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PULUMI_") and k != "KUBECONFIG"},
        layout.ENV_LOCAL_STATE: str(local_cluster.state.root),
        "PULUMI_SKIP_CONFIRMATIONS": "true",
    }
    proc = subprocess.run(["bash", "-c", script], cwd=folder, env=environ, capture_output=True, text=True,
                          timeout=840)  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, f"{out[-4000:]}\n{proc.stderr[-4000:]}"
    steps = [int(n) for n in re.findall(r"^\+ (\d+)$", out, re.M)]
    assert steps == list(range(len(block.commands())))  # every line ran
    assert re.search(r"Resources:\n\s+\+ \d+ to create", out), "the preview planned the stack"
    assert re.search(r"Resources:\n\s+\+ \d+ created", out), "up created it"
    assert re.search(r"Resources:\n\s+- \d+ deleted", out), "destroy removed it"
