"""A local stack's ``secretValues`` under the real program (mocks): into the Pulumi-managed env
Secret as Pulumi secrets (so encrypted in state, masked in output), never into a ConfigMap or any
other resource's inputs; a stack of a real cluster fails before any resource."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import rpc

from infra.config.sections.secrets_config import SECRET_VALUES_KEY
from infra.errors import ConfigError
from infra.manifests.secret_sources import ENV_SECRET_NAME
from infra.tools.snapshot.harness import MASK, ROOT, ProgramRun, run_program, stack_file_config
from worker import constants as c

NS = "mobius-preview-worker"
VALUES = {
    c.ENV_API_TOKENS: "tok-7d1f0a2b9c",
    c.ENV_S3_ACCESS_KEY_ID: "minio-user-5e3a",
    c.ENV_S3_SECRET_ACCESS_KEY: "minio-pass-c81f",
}


def dev_with_values(values: dict[str, str], **overrides: Any) -> tuple[dict[str, Any], list[str]]:
    """The dev stack as the demo's copy sets it: no Vault key, its secrets held in the stack file."""
    config, secret_keys = stack_file_config(ROOT / "Pulumi.dev.yaml")
    config[f"{NS}:secrets"] = {"provider": "external-secrets", "keys": {}}
    config[f"{NS}:{SECRET_VALUES_KEY}"] = values
    config.update({f"{NS}:{k}": v for k, v in overrides.items()})
    return config, [*secret_keys, f"{NS}:{SECRET_VALUES_KEY}"]


def secret_checksum(run: ProgramRun) -> str:
    annotations = run.object("Deployment", "preview-worker-stable")["spec"]["template"]["metadata"]
    checksum: str = annotations["annotations"]["checksum/secret"]
    return checksum


def test_the_values_reach_the_env_secret_as_pulumi_secrets_and_nothing_else() -> None:
    run = run_program("dev", *dev_with_values(VALUES))
    secret = run.resource("Secret", ENV_SECRET_NAME)
    for env in (*VALUES, c.ENV_REDIS_URL):
        assert secret.has_secret("stringData", env)  # encrypted in state, masked in output
    assert run.object("Secret", ENV_SECRET_NAME)["stringData"] == dict.fromkeys(
        [*VALUES, c.ENV_REDIS_URL], MASK
    )
    assert rpc.unwrap_rpc_secret(secret.inputs["stringData"]) == {
        **VALUES,
        c.ENV_REDIS_URL: f"mock-secret-value-of-{NS}:redisUrl",
    }
    assert run.objects("ExternalSecret") == []  # no Vault key: no operator needed
    for name in ("preview-worker-stable", "preview-worker-api"):
        pod = run.object("Deployment", name)["spec"]["template"]["spec"]
        assert {"secretRef": {"name": ENV_SECRET_NAME}} in pod["containers"][0]["envFrom"]
    others = json.dumps([r.inputs for r in run.resources if r.inputs.get("kind") != "Secret"], default=str)
    assert not [v for v in VALUES.values() if v in others]  # no ConfigMap, annotation or output has one
    assert not set(run.object("ConfigMap", "preview-worker-config")["data"]) & c.SECRET_ENV_VARS


def test_a_changed_value_rolls_the_pods() -> None:
    before = run_program("dev", *dev_with_values(VALUES))
    after = run_program("dev", *dev_with_values({**VALUES, c.ENV_API_TOKENS: "tok-rotated"}))
    assert secret_checksum(before) != secret_checksum(after)


def test_values_written_in_clear_are_refused_before_any_resource() -> None:
    config, secret_keys = dev_with_values(VALUES)
    record = ProgramRun("dev")
    with pytest.raises(ConfigError) as info:
        run_program(
            "dev", config, [k for k in secret_keys if not k.endswith(SECRET_VALUES_KEY)], record=record
        )
    assert f"{SECRET_VALUES_KEY}.{c.ENV_API_TOKENS}: must be a secret" in "\n".join(info.value.problems)
    assert record.resources == []


def test_a_stack_of_a_real_cluster_holding_values_fails_before_any_resource() -> None:
    config, secret_keys = dev_with_values(
        VALUES, cluster={"identity": "00000000-0000-4000-8000-000000000001"}
    )
    record = ProgramRun("dev")
    with pytest.raises(ConfigError) as info:
        run_program("dev", config, secret_keys, record=record)
    assert info.value.problems[0].startswith(f"{SECRET_VALUES_KEY}: only a stack of the local cluster")
    assert record.resources == []


def test_the_harness_reads_path_secrets_of_a_stack_file_as_the_engine_passes_them(tmp_path: Path) -> None:
    text = (ROOT / "Pulumi.dev.yaml").read_text()
    held = "".join(f"    {env}:\n      secure: v1:x:{i}\n" for i, env in enumerate(sorted(VALUES)))
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(text + f"  {NS}:{SECRET_VALUES_KEY}:\n{held}")
    config, secret_keys = stack_file_config(path)
    assert f"{NS}:{SECRET_VALUES_KEY}" in secret_keys
    assert config[f"{NS}:{SECRET_VALUES_KEY}"] == {
        env: f"mock-secret-value-of-{NS}:{SECRET_VALUES_KEY}.{env}" for env in VALUES
    }
