"""The README's real-cluster recipe, run as written on a fresh file backend and the local cluster.

Only what names one site is substituted (the backend URL, the kubeconfig path, where the
passphrase comes from), and two set-up lines are skipped for a stated reason; every other
line runs verbatim. If the README's block changes so a substitution no longer applies, the
test fails rather than running something else.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_kit import drop_stack, kubectl_json, pulumi_run
from live_kit import container

from infra.tools.local import layout
from infra.tools.local.cluster import control_plane, shell_env
from infra.tools.local.project import project_copy
from infra.tools.local.toolchain.versions import PYTHON_PULUMI_KUBERNETES_VERSION
from infra.tools.release.stackfile import StackFile
from tests.doc_commands import group

pytestmark = pytest.mark.timeout(600)

README = Path(__file__).resolve().parents[2] / "README.md"
PLUGIN_LINE = f"pulumi plugin install resource kubernetes {PYTHON_PULUMI_KUBERNETES_VERSION}"
#: Lines not run here, and why.
SKIPPED = {
    "./dev venv": "./dev test made the .venv this run uses",
    PLUGIN_LINE: "no plugin registry here: the toolchain installed this version, built from source",
}
PASSPHRASE = "readme-recipe-passphrase"


def recipe() -> list[str]:
    """The commands of the README's block (comments and blank lines dropped)."""
    (block,) = group("real-cluster")
    return block.commands()


@pytest.fixture
def recipe_env(local_cluster: control_plane.Cluster, tmp_path: Path) -> dict[str, str]:
    """A shell as a user has it: the built CLI on PATH, an empty PULUMI_HOME but for the plugins."""
    home = tmp_path / "pulumi-home"
    home.mkdir()
    (home / "plugins").symlink_to(layout.pulumi_home() / "plugins")
    user_shell = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_") and k != "KUBECONFIG"}
    return {
        **user_shell,
        "PATH": shell_env.variables(local_cluster.state)["PATH"],
        "PULUMI_HOME": str(home),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }


@pytest.fixture
def project(
    tmp_path: Path, recipe_env: dict[str, str], local_cluster: control_plane.Cluster
) -> Iterator[Path]:
    """A scratch copy of the project; at teardown the stacks the recipe made (if it got as far as
    its ``pulumi login``) are dropped (e2e_kit.drop_stack)."""
    folder = project_copy(tmp_path / "project")
    yield folder
    environ = {
        **recipe_env,
        "KUBECONFIG": str(local_cluster.state.kubeconfig),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
    }
    listed = subprocess.run(["pulumi", "stack", "ls", "--json"], cwd=folder, env=environ, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    for stack in json.loads(listed.stdout) if listed.returncode == 0 else []:
        drop_stack(folder, environ, stack["name"])


def test_the_recipe_deploys_staging_as_its_stack_file_says(
    project: Path, recipe_env: dict[str, str], local_cluster: control_plane.Cluster, tmp_path: Path
) -> None:
    backend = tmp_path / "backend"
    backend.mkdir()
    substitutions = {
        "pulumi login s3://my-state-bucket": f"pulumi login file://{backend}",
        "export KUBECONFIG=~/.kube/staging": f"export KUBECONFIG={local_cluster.state.kubeconfig}",
        'export PULUMI_CONFIG_PASSPHRASE="$(cat ~/.config/mobius/staging-passphrase)"': (
            f"export PULUMI_CONFIG_PASSPHRASE={PASSPHRASE}"
        ),
    }
    script, used = ["set -euo pipefail"], set()
    for line in recipe():
        if line in SKIPPED:
            used.add(line)
            continue
        if line in substitutions:
            used.add(line)
            line = substitutions[line]
        script.append(line)
    assert used == set(SKIPPED) | set(substitutions), "the README's recipe changed: update this test"
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=project, env=recipe_env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    # Both the preview and the up ran the policy pack, and it passed.
    assert done.stdout.count("✅ mobius-preview-worker@v0.0.1 (local: policy)") == 2, done.stdout[-3000:]

    environ = {**recipe_env, "KUBECONFIG": str(local_cluster.state.kubeconfig)}
    state = StackFile(project / "Pulumi.staging.yaml").state()
    namespace = "preview-staging"
    found: dict[str, Any] = {
        d["metadata"]["name"]: container(d)["image"]
        for d in kubectl_json(environ, "-n", namespace, "get", "deployments")["items"]
    }
    assert found == {
        "preview-worker-stable": state.image,
        "preview-worker-canary": state.canary_image,
        "preview-worker-api": state.image,
    }
    secrets = kubectl_json(environ, "-n", namespace, "get", "externalsecrets")["items"]
    assert [s["spec"]["secretStoreRef"] for s in secrets] == [{"name": "vault", "kind": "ClusterSecretStore"}]
    # The fresh backend now holds the stack, and the stack file its encryption salt.
    assert "encryptionsalt:" in (project / "Pulumi.staging.yaml").read_text()
    # The same shell as the recipe's: its KUBECONFIG is what the stack's identity check reads.
    again = {**environ, "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE, "PULUMI_BACKEND_URL": f"file://{backend}"}
    pulumi_run(["preview", "--stack", "staging", "--expect-no-changes"], again, project)
