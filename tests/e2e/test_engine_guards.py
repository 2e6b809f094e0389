"""What stops a bad change in ``pulumi preview``, through the real engine and provider.

* every committed stack (dev, staging, prod) previews with the policy pack against the
  local cluster (its CRDs installed, a throwaway file backend, ``KUBECONFIG`` pointed at
  the local API server): the provider accepts every object, the pack passes;
* an invalid stack config fails before any resource, naming the key and the reason;
* a prod config that breaks a policy fails with the policy's message;
* a stack that names an image signer (``imageSignature``) previews an unsigned digest into a
  refusal, and pins and deploys one its key signed (images in a loopback registry).

In each failing case the cluster and the stack's state are left untouched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from e2e_kit import kubectl_json, pulumi_json, pulumi_run

from infra.tools.image.registry_server import serve
from infra.tools.local.layout import REPO_ROOT
from tests.infra.supply_chain.signing_kit import Key, push_image, sign_image

pytestmark = pytest.mark.timeout(300)

COMMITTED = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in REPO_ROOT.glob("Pulumi.*.yaml"))
#: The signed-image test's deploy: a Namespace of its own, as the next module's dev stack deploys
#: preview-dev while this one is still terminating (conftest.py's ``project`` does not wait for it).
SIGNED_NAMESPACE = "preview-signed"


def namespaces(environ: dict[str, str]) -> set[str]:
    return {n["metadata"]["name"] for n in kubectl_json(environ, "get", "namespaces")["items"]}


def untouched(project: Path, environ: dict[str, str], stack: str, before: set[str]) -> None:
    exported = json.loads(pulumi_run(["stack", "export", "--stack", stack], environ, project))
    assert exported["deployment"].get("resources") in (None, [])
    assert namespaces(environ) == before


def test_the_committed_stacks_are_the_three_environments() -> None:
    assert COMMITTED == ["dev", "prod", "staging"]


@pytest.mark.parametrize("stack", COMMITTED)
def test_each_committed_stack_previews_cleanly_with_the_policy_pack(
    stack: str, project: Path, engine_env: dict[str, str]
) -> None:
    pulumi_run(["stack", "init", stack], engine_env, project)
    plan = pulumi_json(
        ["preview", "--stack", stack, "--json", "--policy-pack", str(project / "policy")], engine_env, project
    )
    kinds = {step["newState"]["type"] for step in plan["steps"]}
    assert {"kubernetes:apps/v1:Deployment", "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
            "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"} <= kinds  # fmt: skip
    if stack != "dev":  # the vault's copy of the secrets: an ExternalSecret the provider accepts
        assert "kubernetes:external-secrets.io/v1:ExternalSecret" in kinds
    assert {step["op"] for step in plan["steps"]} == {"create"}
    errors = [d for d in plan.get("diagnostics", []) if d.get("severity") == "error"]
    assert errors == []


def test_an_invalid_config_fails_preview_naming_the_key_and_reason(
    project: Path, engine_env: dict[str, str]
) -> None:
    pulumi_run(["stack", "init", "dev"], engine_env, project)
    before = namespaces(engine_env)
    stack_file = project / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("concurrency: 2", "concurrency: 0"))
    out = pulumi_run(["preview", "--stack", "dev"], engine_env, project, expect_fail=True)
    assert "invalid stack config" in out
    assert "concurrency: " in out
    assert "Traceback" not in out  # one clear error, not a stack trace
    out = pulumi_run(["up", "--stack", "dev", "--yes"], engine_env, project, expect_fail=True)
    assert "invalid stack config" in out
    untouched(project, engine_env, "dev", before)


def test_the_policy_pack_blocks_a_violating_prod_config(project: Path, engine_env: dict[str, str]) -> None:
    pulumi_run(["stack", "init", "prod"], engine_env, project)
    before = namespaces(engine_env)
    stack_file = project / "Pulumi.prod.yaml"
    digest = "ghcr.io/mobius/preview-worker@sha256:" + "1" * 64
    canary = f"    weight: 80\n    image: {digest}"
    stack_file.write_text(stack_file.read_text().replace("    weight: 0\n    image: null", canary))
    policy = str(project / "policy")
    out = pulumi_run(["up", "--stack", "prod", "--yes", "--policy-pack", policy], engine_env, project,
                     expect_fail=True)  # fmt: skip
    assert "mandatory" in out.lower()
    assert "canary" in out.lower()
    untouched(project, engine_env, "prod", before)


def test_release_apply_runs_the_policy_pack_and_deploys_nothing_it_refuses(
    project: Path, engine_env: dict[str, str]
) -> None:
    pulumi_run(["stack", "init", "prod"], engine_env, project)
    before = namespaces(engine_env)
    digest = "ghcr.io/mobius/preview-worker@sha256:" + "2" * 64
    cmd = [sys.executable, "-m", "infra", "release", "--root", str(project), "canary", "--stack", "prod",
           "--image", digest, "--weight", "80", "--reason", "e2e", "--apply", "--no-git"]  # fmt: skip
    proc = subprocess.run(cmd, env=engine_env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "release: engine: pulumi preview --stack prod failed" in out
    assert "canary weight 80 is above 50" in out  # the production-sizing policy's own message
    untouched(project, engine_env, "prod", before)


def test_only_an_image_signed_by_the_stacks_signer_deploys(
    project: Path, engine_env: dict[str, str], tmp_path: Path
) -> None:
    with serve(tmp_path / "registry") as registry:
        key = Key.make(tmp_path / "keys")
        repo = f"{registry.host}/mobius/preview-worker"
        unsigned = f"{repo}@{push_image(registry.host, 'mobius/preview-worker', 'unsigned', b'unsigned')}"
        digest = push_image(registry.host, "mobius/preview-worker", "signed", b"signed")
        sign_image(registry.host, "mobius/preview-worker", digest, key)
        signed = f"{repo}@{digest}"
        stack_file = project / "Pulumi.dev.yaml"
        text = stack_file.read_text()
        pinned = "  mobius-preview-worker:image:"
        committed = next(line for line in text.splitlines() if line.startswith(pinned))
        signer = "  mobius-preview-worker:imageSignature:\n    publicKey: |\n"
        signer += textwrap.indent(key.public_pem, "      ")
        text = text.replace(committed, f"{pinned} {unsigned}")
        text = text.replace("namespace: preview-dev", f"namespace: {SIGNED_NAMESPACE}")
        stack_file.write_text(text.replace("config:\n", "config:\n" + signer, 1))
        pulumi_run(["stack", "init", "dev"], engine_env, project)
        before = namespaces(engine_env)
        policy = str(project / "policy")
        out = pulumi_run(["preview", "--stack", "dev", "--policy-pack", policy], engine_env, project,
                         expect_fail=True)  # fmt: skip
        assert "images-signed" in out
        assert f"image {unsigned}: refused: {unsigned} is not signed" in out
        untouched(project, engine_env, "dev", before)
        # An unsigned canary written into the file by hand: a weight step brings no new image, so
        # the release gate has nothing to check, and the pack refuses it through the Automation API.
        text = stack_file.read_text().replace(f"{pinned} {unsigned}", f"{pinned} {signed}")
        stack_file.write_text(
            text.replace("    weight: 0\n    image: null", f"    weight: 10\n    image: {unsigned}")
        )
        release = [sys.executable, "-m", "infra", "release", "--root", str(project)]
        step = [*release, "canary", "--stack", "dev", "--weight", "20", "--reason", "e2e", "--apply",
                "--no-git"]  # fmt: skip
        proc = subprocess.run(step, env=engine_env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "release: engine: pulumi preview --stack dev failed" in proc.stderr
        assert f"image {unsigned}: refused: {unsigned} is not signed" in proc.stdout + proc.stderr
        untouched(project, engine_env, "dev", before)
        # The release gate checks the signature, then --apply runs `pulumi up --policy-pack policy`
        # through the Automation API: the pack checks it again, in the engine, and it deploys.
        abort = [*release, "canary", "--stack", "dev", "--abort", "--reason", "e2e", "--no-git"]
        subprocess.run(abort, env=engine_env, capture_output=True, text=True, timeout=300, check=True)
        pin = [*release, "pin", "--stack", "dev", "--image", signed, "--reason", "e2e", "--apply", "--no-git"]
        # Back to the unsigned stable digest of the first preview, so the pin is a change.
        stack_file.write_text(stack_file.read_text().replace(f"{pinned} {signed}", f"{pinned} {unsigned}"))
        proc = subprocess.run(pin, env=engine_env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"{signed}: signature verified (the configured public key)" in proc.stdout
        live = kubectl_json(engine_env, "-n", SIGNED_NAMESPACE, "get", "deployments")["items"]
        images = {c["image"] for d in live for c in d["spec"]["template"]["spec"]["containers"]}
        assert images == {signed}
