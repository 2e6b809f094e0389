"""The promote gate's engine lookup: the real Pulumi CLI on a file backend.

The stacks' updates are made by an inline Automation API program (no language plugin
needed), each stack with its own passphrase; :func:`deployed_digest` then reads them back
the way the gate does in the repository's project: non-secret outputs only, with no
passphrase. Fails, never skips, when the CLI is not built. No cluster: these run with the rest of
the suite, not the end-to-end half (whose ``e2e`` mark is for the engine against the local cluster).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from release_testkit import Run, digest

from infra.config.fields.image_refs import split_image
from infra.errors import EngineError
from infra.tools.local.cluster import shell_env
from infra.tools.local.layout import StateDir
from infra.tools.local.toolchain.build import bin_dir
from infra.tools.release import engine
from infra.tools.release.stackfile import StackFile

PROJECT = "mobius-preview-worker"


def test_digest_from_outputs() -> None:
    d = split_image(digest("a"))[1]
    assert engine.digest_from_outputs({"digests": {"stable": d, "canary": None}}) == d
    assert engine.digest_from_outputs({"digests": {"stable": d}}, track="canary") is None
    assert engine.digest_from_outputs({"namespace": "x"}) is None


def test_the_reads_carry_no_passphrase_and_take_the_source_backend() -> None:
    environ = {
        "PULUMI_CONFIG_PASSPHRASE": "p",
        "PULUMI_CONFIG_PASSPHRASE_FILE": "/f",
        "PULUMI_BACKEND_URL": "s3://prod-state",
        "PATH": "/bin",
    }
    assert engine.read_env(environ) == {"PULUMI_BACKEND_URL": "s3://prod-state", "PATH": "/bin"}
    environ[engine.SOURCE_BACKEND_ENV] = "s3://staging-state"
    assert engine.read_env(environ)["PULUMI_BACKEND_URL"] == "s3://staging-state"


def test_a_secret_or_missing_output_is_no_digest() -> None:
    deploy = engine.Deploy("succeeded", "t", {"digests": "[secret]", "releaseId": "r-1"})
    assert deploy.output("digests") is None and deploy.output("releaseId") == "r-1"
    assert engine.digest_from_outputs(deploy.outputs) is None
    assert not engine.Deploy("failed", None).succeeded


@pytest.fixture
def engine_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file backend of this test's own, with the built CLI first on PATH."""
    if shutil.which("pulumi", path=str(bin_dir())) is None:
        pytest.fail(f"the pulumi CLI is not built under {bin_dir()}; run `python -m infra local bootstrap`")
    state = StateDir(tmp_path / "state")
    for name, value in shell_env.variables(state).items():
        monkeypatch.setenv(name, value)
    state.pulumi_backend.mkdir(parents=True)


PASSPHRASES = {"staging": "staging's own passphrase", "prod": "prod's own passphrase"}


def _up(tmp_path: Path, stable: str | None, stack_name: str = "staging") -> bool:
    """One `pulumi up` of an inline program exporting the program's `digests` output (None: it fails).

    Each stack is encrypted with its own passphrase, and exports a secret next to its digests.
    """
    import pulumi
    from pulumi import automation as auto

    def program() -> None:
        if stable is None:
            raise RuntimeError("deploy failed on purpose")
        pulumi.export("digests", {"stable": stable})
        pulumi.export("token", pulumi.Output.secret(f"{stack_name}-only"))

    work = tmp_path / "inline"
    work.mkdir(exist_ok=True)
    stack = auto.create_or_select_stack(
        stack_name=stack_name,
        project_name=PROJECT,
        program=program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(work),
            project_settings=auto.ProjectSettings(name=PROJECT, runtime="python"),
            env_vars={"PULUMI_CONFIG_PASSPHRASE": PASSPHRASES[stack_name]},
        ),
    )
    try:
        stack.up()
    except auto.CommandError:
        return False
    return True


def test_deployed_digest_is_the_last_successful_up(engine_env: None, repo: Path, tmp_path: Path) -> None:
    first, second = split_image(digest("a"))[1], split_image(digest("b"))[1]
    with pytest.raises(
        EngineError, match=r"cannot read stack 'staging' \(stack history\) in file://.*: error: no stack"
    ):
        engine.deployed_digest(repo, "staging")
    assert _up(tmp_path, first)
    assert engine.deployed_digest(repo, "staging") == first
    assert _up(tmp_path, second)
    assert engine.deployed_digest(repo, "staging") == second
    assert not _up(tmp_path, None)
    assert engine.deployed_digest(repo, "staging") is None  # the last update failed


def test_promote_gate_reads_the_engine(engine_env: None, repo: Path, run: Run, tmp_path: Path) -> None:
    """`promote` without an injected lookup asks the real engine about staging's last `pulumi up`."""
    staging = StackFile(repo / "Pulumi.staging.yaml").state().image
    assert staging is not None
    assert _up(tmp_path, split_image(digest("f"))[1])
    result = run("promote", "--from", "staging", "--to", "prod")
    assert (
        result.code == 1
        and f"deployed sha256:{'f' * 64}; run `pulumi up --stack staging` first" in result.err
    )
    assert _up(tmp_path, split_image(staging)[1])
    result = run("promote", "--from", "staging", "--to", "prod", "--canary", "10")
    assert result.code == 0, result.err
    assert StackFile(repo / "Pulumi.prod.yaml").state().canary_image == staging


def test_promote_needs_only_the_targets_passphrase(
    engine_env: None, repo: Path, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """staging and prod encrypted with different passphrases; the shell holds only prod's.

    Reading staging with ``--show-secrets`` (what the Automation API's ``outputs()`` does, and
    the gate did; its ``history()`` too, once the config holds a secret) fails there; the gate
    reads only the non-secret ``digests`` output and passes, and still refuses a digest staging
    did not deploy.
    """
    from pulumi import automation as auto

    staging = StackFile(repo / "Pulumi.staging.yaml").state().image
    assert staging is not None
    assert _up(tmp_path, split_image(staging)[1], "staging")
    assert _up(tmp_path, split_image(digest("b"))[1], "prod")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASES["prod"])
    handle = auto.select_stack(stack_name="staging", work_dir=str(repo))
    with pytest.raises(auto.CommandError, match="incorrect passphrase"):
        handle.outputs()  # `pulumi stack output --json --show-secrets`: the old gate's read
    assert engine.deployed_digest(repo, "staging") == split_image(staging)[1]
    deploy = engine.last_deploy(repo, "staging")
    assert deploy is not None and deploy.succeeded and deploy.output("token") is None  # secret: unread

    result = run("promote", "--from", "staging", "--to", "prod", "--canary", "10")
    assert result.code == 0, result.err
    assert StackFile(repo / "Pulumi.prod.yaml").state().canary_image == staging

    # A digest staging never deployed is still refused, with prod's passphrase only.
    assert run("pin", "--stack", "staging", "--image", digest("c")).code == 0
    refused = run("promote", "--from", "staging", "--to", "prod")
    assert refused.code == 1
    assert f"refusing to promote {digest('c')}: stack staging's last successful `pulumi up` deployed " in (
        refused.err
    )
    assert split_image(staging)[1] in refused.err


def test_the_source_backend_may_be_another(
    engine_env: None, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """staging's state in a backend of its own: prod's shell names it in RELEASE_SOURCE_BACKEND_URL."""
    staging_backend = tmp_path / "staging-backend"
    staging_backend.mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{staging_backend}")
    assert _up(tmp_path, split_image(digest("a"))[1], "staging")
    prod_backend = tmp_path / "prod-backend"
    prod_backend.mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{prod_backend}")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASES["prod"])
    with pytest.raises(EngineError, match=f"in file://{prod_backend}: error: no stack named 'staging'"):
        engine.deployed_digest(repo, "staging")
    monkeypatch.setenv(engine.SOURCE_BACKEND_ENV, f"file://{staging_backend}")
    assert engine.deployed_digest(repo, "staging") == split_image(digest("a"))[1]
