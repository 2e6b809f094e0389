"""``secretValues``: secret env values held as Pulumi secrets in a local stack's own file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.config.model import ConfigError, Secret, load_stack_file, parse_config
from infra.config.sections.secrets_config import SECRET_VALUES_KEY
from worker.constants import ENV_API_TOKENS, ENV_S3_ACCESS_KEY_ID, ENV_S3_SECRET_ACCESS_KEY

SECURE = {"secure": "v1:abc:def"}
REMOTE = "00000000-0000-4000-8000-000000000000"  # a real cluster's kube-system UID
HELD = {ENV_API_TOKENS: SECURE, ENV_S3_ACCESS_KEY_ID: SECURE, ENV_S3_SECRET_ACCESS_KEY: SECURE}


def local(**extra: Any) -> dict[str, Any]:
    """A local stack whose API token and S3 credentials are all in ``secretValues``, no Vault key."""
    return {
        "cluster": {"identity": "local"},
        "image": f"ghcr.io/mobius/preview-worker@sha256:{'a' * 64}",
        "redisUrl": SECURE,
        "artifacts": {"bucket": "previews"},
        "network": {"s3Cidrs": ["10.250.0.1/32"]},
        "monitoring": {"runbookBaseUrl": "https://runbooks.example.com"},
        SECRET_VALUES_KEY: HELD,
        **extra,
    }


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value.problems


def test_a_local_stack_needs_no_vault_key_when_its_file_holds_the_values() -> None:
    cfg = parse_config(local())
    assert cfg.secrets.keys == {}
    assert set(cfg.secret_values) == set(HELD)
    assert all(isinstance(v, Secret) and v.ciphertext == SECURE["secure"] for v in cfg.secret_values.values())
    assert "abc" not in repr(cfg.secret_values)  # opaque when printed


def test_values_held_in_the_file_and_in_the_vault_may_be_mixed() -> None:
    vault = {"keys": {ENV_S3_ACCESS_KEY_ID: "id", ENV_S3_SECRET_ACCESS_KEY: "key"}}
    cfg = parse_config(local(**{SECRET_VALUES_KEY: {ENV_API_TOKENS: SECURE}, "secrets": vault}))
    assert set(cfg.secret_values) == {ENV_API_TOKENS}


def test_a_stack_of_a_real_cluster_may_not_hold_secret_values() -> None:
    assert problems(local(cluster={"identity": REMOTE})) == [
        f"{SECRET_VALUES_KEY}: only a stack of the local cluster (cluster.identity local) may hold secret "
        "values in its stack file; this one reads them from the vault (secrets.keys)"
    ]


def test_an_env_var_from_both_places_is_refused_naming_it() -> None:
    raw = local(secrets={"keys": {ENV_API_TOKENS: "api_tokens"}})
    assert problems(raw) == [
        f"{SECRET_VALUES_KEY}.{ENV_API_TOKENS}: set either {SECRET_VALUES_KEY}.{ENV_API_TOKENS} "
        f"or secrets.keys.{ENV_API_TOKENS}, not both"
    ]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {**HELD, ENV_API_TOKENS: "token-in-clear"},
            f"{SECRET_VALUES_KEY}.{ENV_API_TOKENS}: must be a secret ({{secure: …}}): set it with "
            f"`pulumi config set --secret --path {SECRET_VALUES_KEY}.{ENV_API_TOKENS} …`",
        ),
        (
            {**HELD, "PATH": SECURE},
            f"{SECRET_VALUES_KEY}.PATH: is not a secret env var of the worker "
            "(known: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, PREVIEW_API_TOKENS)",
        ),
        (
            {**HELD, "REDIS_URL": SECURE},
            f"{SECRET_VALUES_KEY}.REDIS_URL: has its own key: set redisUrl instead",
        ),
        (["x"], f"{SECRET_VALUES_KEY}: must be a mapping of secret env vars to secrets, got a list"),
    ],
)
def test_each_bad_value_is_refused_naming_its_key(values: object, expected: str) -> None:
    assert problems(local(**{SECRET_VALUES_KEY: values})) == [expected]


def test_the_store_and_the_api_still_need_their_secrets_from_somewhere() -> None:
    raw = local(**{SECRET_VALUES_KEY: {ENV_S3_ACCESS_KEY_ID: SECURE}})
    assert problems(raw) == [
        "secrets.keys: needs PREVIEW_API_TOKENS: the job API refuses to start without bearer tokens "
        f"(from the vault, or {SECRET_VALUES_KEY} in a local stack)",
        "secrets.keys: artifacts.store s3 needs AWS_SECRET_ACCESS_KEY (S3 credentials come only from the "
        f"vault, or {SECRET_VALUES_KEY} in a local stack)",
    ]


def test_a_stack_file_written_by_pulumi_config_set_path_loads(tmp_path: Path) -> None:
    # `pulumi config set --secret --path secretValues.X v` writes this shape.
    path = tmp_path / "Pulumi.local.yaml"
    held = "".join(f"    {env}:\n      secure: v1:x:{i}\n" for i, env in enumerate(sorted(HELD)))
    path.write_text(
        "config:\n  mobius-preview-worker:cluster: {identity: local}\n"
        f"  mobius-preview-worker:image: ghcr.io/m/p@sha256:{'b' * 64}\n"
        "  mobius-preview-worker:redisUrl: {secure: v1:r:s}\n"
        "  mobius-preview-worker:artifacts: {bucket: previews}\n"
        "  mobius-preview-worker:network: {s3Cidrs: [10.250.0.1/32]}\n"
        "  mobius-preview-worker:monitoring: {runbookBaseUrl: 'https://r.example'}\n"
        f"  mobius-preview-worker:{SECRET_VALUES_KEY}:\n{held}"
    )
    cfg = load_stack_file(path)
    assert {env: s.ciphertext for env, s in cfg.secret_values.items()} == {
        env: f"v1:x:{i}" for i, env in enumerate(sorted(HELD))
    }


def test_the_key_is_declared_once_and_is_the_models_own() -> None:
    from infra.config.model import StackConfig

    assert StackConfig.model_fields["secret_values"].alias == SECRET_VALUES_KEY
