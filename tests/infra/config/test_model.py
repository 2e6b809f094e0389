"""The stack config model: every invalid field gets its own clear message; valid files load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.config.model import (
    IMAGE_RE,
    ConfigError,
    Secret,
    load_stack_file,
    parse_config,
    validate_image_ref,
)
from tests.examples import examples
from worker.constants import QUEUE_NAME_PATTERN, SECRET_ENV_VARS

DIGEST = "a" * 64
IMAGE = f"ghcr.io/mobius/preview-worker@sha256:{DIGEST}"
SECRET = {"secure": "v1:abc:def"}
KNOWN_SECRETS = ", ".join(sorted(SECRET_ENV_VARS))


STORE_KEYS = {
    "AWS_ACCESS_KEY_ID": "s3_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "s3_secret_access_key",
    "PREVIEW_API_TOKENS": "api_tokens",
}


QUEUE_RULE = f"must match {QUEUE_NAME_PATTERN}"  # the worker's own pattern (worker/tunables.py)


RUNBOOKS = "https://runbooks.example.com"


def minimal(**extra: Any) -> dict[str, Any]:
    """The smallest valid config (an S3 store needs a bucket, its credentials' keys and a peer)."""
    return {
        "cluster": {"identity": "local"},
        "image": IMAGE,
        "redisUrl": SECRET,
        "artifacts": {"bucket": "previews"},
        "secrets": {"keys": STORE_KEYS},
        "network": {"s3Cidrs": ["192.0.2.0/24"]},
        **extra,
        "monitoring": {"runbookBaseUrl": RUNBOOKS, **extra.get("monitoring", {})},
    }


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value.problems


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"canary": {"weight": 150, "image": IMAGE}}, "canary.weight: must be between 0 and 100, got 150"),
        ({"canary": {"weight": -1}}, "canary.weight: must be between 0 and 100, got -1"),
        ({"canary": {"weight": 10}}, "canary.image: required when canary.weight > 0 (weight is 10)"),
        (
            {"canary": {"weight": 10, "image": "ghcr.io/x:1.2"}},
            "canary.image: must be pinned by digest (repository@sha256:<64 hex>), got tag 'ghcr.io/x:1.2'",
        ),
        (
            {"image": "ghcr.io/mobius/preview-worker:latest"},
            "image: must be pinned by digest (repository@sha256:<64 hex>), got tag "
            "'ghcr.io/mobius/preview-worker:latest'",
        ),
        (
            {"image": "ghcr.io/mobius/preview-worker@sha256:abc"},
            "image: digest must be sha256:<64 lowercase hex>, got 'sha256:abc'",
        ),
        (
            {"image": f"ghcr.io/mobius/preview-worker:1.0@sha256:{DIGEST}"},
            "image: must not carry a tag next to the digest, got "
            f"'ghcr.io/mobius/preview-worker:1.0@sha256:{DIGEST}'",
        ),
        (
            {"image": f"ghcr.io/mobius/preview-worker@sha256:{'A' * 64}"},
            f"image: digest must be sha256:<64 lowercase hex>, got 'sha256:{'A' * 64}'",
        ),
        ({"replicas": {"min": 4, "max": 2}}, "replicas.max: must be >= replicas.min (4), got 2"),
        ({"replicas": {"min": 0}}, "replicas.min: must be between 1 and 100, got 0"),
        ({"worker": {"concurrency": "many"}}, "worker.concurrency: must be an integer, got 'many'"),
        ({"worker": {"concurrency": 0}}, "worker.concurrency: must be at least 1, got 0"),
        ({"worker": {"queueName": "a b"}}, f"worker.queueName: {QUEUE_RULE}, got 'a b'"),
        # Issue 16 item 11 / issue 17: each of these made every worker pod exit 2 at start.
        ({"worker": {"queueName": "a/b"}}, f"worker.queueName: {QUEUE_RULE}, got 'a/b'"),
        ({"worker": {"queueName": "_jobs"}}, f"worker.queueName: {QUEUE_RULE}, got '_jobs'"),
        ({"worker": {"queueName": "q" * 70}}, f"worker.queueName: {QUEUE_RULE}, got {'q' * 70!r}"),
        ({"worker": {"queueName": "jöbs"}}, f"worker.queueName: {QUEUE_RULE}, got 'jöbs'"),
        ({"worker": {"queueName": "jobs\n"}}, f"worker.queueName: {QUEUE_RULE}, got 'jobs\\n'"),
        ({"worker": {"queueMax": 0}}, "worker.queueMax: must be at least 1, got 0"),
        (
            {"namespace": "Preview_Prod"},
            "namespace: must be a DNS-1123 label (lowercase letters, digits, '-', max 63), "
            "got 'Preview_Prod'",
        ),
        (
            {
                "resources": {
                    "requests": {"cpu": "2", "memory": "1Gi"},
                    "limits": {"cpu": "1", "memory": "2Gi"},
                }
            },
            "resources.requests.cpu: must be <= limits.cpu (1), got 2",
        ),
        (
            {"resources": {"limits": {"cpu": "lots", "memory": "1Gi"}}},
            "resources.limits.cpu: must be a Kubernetes cpu quantity like 250m or 1, got 'lots'",
        ),
        ({"autoscaling": {"cpuTarget": 0}}, "autoscaling.cpuTarget: must be between 1 and 100, got 0"),
        (
            {"secrets": {"provider": "sops"}},
            "secrets.provider: must be one of 'vault' or 'external-secrets', got 'sops'",
        ),
        (
            {"secrets": {"keys": {"AWS_KEY": "aws"}}},
            f"secrets.keys: AWS_KEY is not a secret env var of the worker (known: {KNOWN_SECRETS})",
        ),
        (
            {"monitoring": {"runbookBaseUrl": "wiki/runbooks"}},
            "monitoring.runbookBaseUrl: must be an http(s) URL, got 'wiki/runbooks'",
        ),
        (
            {"monitoring": {"failureRatio": 5, "runbookBaseUrl": "https://r.example.com"}},
            "monitoring.failureRatio: must be between 0 and 1, got 5.0",
        ),
        (
            {
                "monitoring": {
                    "serviceMonitorLabels": {"release": "a b"},
                    "runbookBaseUrl": "https://r.example.com",
                }
            },
            "monitoring.serviceMonitorLabels: the value of 'release' is not a Kubernetes label value",
        ),
        (
            {"network": {"redisNamespace": None}},
            "network.redisNamespace: set redisNamespace or redisCidrs so pods can reach Redis",
        ),
        (
            {"network": {"redisCidrs": ["10.0.0.0/33"]}},
            "network.redisCidrs: must be CIDR blocks like 10.0.0.0/16, got '10.0.0.0/33'",
        ),
        ({"sourceHosts": [{"host": "cdn.example"}]}, "sourceHosts.0.cidrs: required"),
        (
            {"redisUrl": "redis://:hunter2@redis:6379"},
            "redisUrl: must be a secret: set it with `pulumi config set --secret redisUrl …`",
        ),
        ({"replica": {"min": 2}}, "replica: unknown key"),
        (
            {"worker": {"keepFailedSeconds": 0}},
            "worker.keepFailedSeconds: must be at least 1, got 0",
        ),
        ({"worker": {"apiMaxBodyBytes": 100}}, "worker.apiMaxBodyBytes: must be at least 4096, got 100"),
        (
            {"worker": {"apiMaxBodyBytes": 64 * 2**20, "apiBodyBudgetBytes": 64 * 2**20}},
            "worker.apiBodyBudgetBytes: 67108864 times 8 (what the request bodies in flight may cost "
            "the API) is over api.resources.limits.memory 256Mi",
        ),
        (
            {"worker": {"apiMaxBodyBytes": 64 * 2**20}},  # the budget is then one such body
            "worker.apiMaxBodyBytes: 67108864 times 8 (what the request bodies in flight may cost "
            "the API) is over api.resources.limits.memory 256Mi",
        ),
        (
            {"worker": {"apiMaxBodyBytes": 8 * 2**20, "apiBodyBudgetBytes": 4 * 2**20}},
            "worker: apiBodyBudgetBytes (PREVIEW_API_BODY_BUDGET_BYTES) 4194304 is under apiMaxBodyBytes "
            "(PREVIEW_API_MAX_BODY_BYTES) 8388608: a body that large could never be read",
        ),
        (
            {"imagePullSecrets": ["Ghcr"]},
            "imagePullSecrets: 'Ghcr' is not a Secret name (DNS-1123 subdomain, max 253)",
        ),
        ({"imagePullSecrets": ["a", "a"]}, "imagePullSecrets: names a secret twice: ['a', 'a']"),
        ({"imagePullSecrets": [f"s{i}" for i in range(9)]}, "imagePullSecrets: at most 8 secrets, got 9"),
        (
            {"monitoring": {"alertFor": "ten minutes"}},
            "monitoring.alertFor: must be a duration like 30s, 10m or 1h, got 'ten minutes'",
        ),
    ],
)
def test_each_invalid_field_has_its_own_message(raw: dict[str, Any], expected: str) -> None:
    assert problems(minimal(**raw)) == [expected]


def test_an_inline_cap_that_needs_the_apis_checking_process_needs_its_memory() -> None:
    """Bodies of 1 MiB or more are checked in a process of the API's own (worker/api/checking.py):
    its memory counts against the API's limit, and only when the inline cap lets such bodies in."""
    roomy = {"redisBudget": "64Gi"}
    (memory,) = problems(minimal(**roomy, worker={"maxInlineBytes": 4 * 2**20}))  # bodies up to 5.4 MiB
    assert memory == (
        "api.resources.limits.memory: 256Mi is under the 262Mi the API may need: bodies of up to 5657944 "
        "bytes (the inline cap 4194304 as base64, or worker.apiMaxBodyBytes) are checked in a process of "
        "their own (96Mi, plus 7 times the body) besides the request bodies in flight; give more memory, "
        "or a smaller worker.maxInlineBytes"
    )
    limits = {"limits": {"cpu": "1", "memory": "320Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    assert parse_config(minimal(**roomy, worker={"maxInlineBytes": 4 * 2**20}, api={"resources": limits}))
    assert parse_config(minimal(**roomy, worker={"maxInlineBytes": 700_000}))  # under 1 MiB: no process


def test_the_inline_cap_must_fit_the_redis_budget_and_the_error_names_the_key() -> None:
    from worker.queue.budget import Held, largest_inline

    fits = largest_inline(2 * 2**30, Held(20, 1000, 5000, 1000))  # queueMax and retention defaults
    assert 100_000 < fits == parse_config(minimal()).inline_bytes  # maxInlineBytes 0: the largest
    assert parse_config(minimal(worker={"maxInlineBytes": 100_000})).inline_bytes == 100_000
    (inline,) = problems(minimal(worker={"maxInlineBytes": 10 * 2**20}))
    assert inline.startswith("worker.maxInlineBytes: 10485760 bytes of inline source in each of 7120 jobs")
    assert inline.endswith(
        f"over redisBudget (2147483648); the largest cap that fits is {fits}, or 0 to use it"
    )
    (budget,) = problems(minimal(redisBudget="16Mi"))
    assert budget.startswith(
        "redisBudget: 16777216 bytes cannot hold 7120 jobs (worker.queueMax + worker.keep*Count"
    )
    assert problems(minimal(redisBudget="lots")) == [
        "redisBudget: must be a Kubernetes memory quantity like 512Mi or 1Gi, got 'lots'"
    ]
    assert problems(minimal(redisBudget="2Ti")) == ["redisBudget: must be between 16Mi and 1024Gi, got '2Ti'"]


def test_a_memory_limit_too_small_for_the_render_processes_is_refused_naming_it() -> None:
    # Issue 16, item 11: it used to be raised to the worker's minimum, past the pod's limit.
    small = {"requests": {"cpu": "1", "memory": "200Mi"}, "limits": {"cpu": "2", "memory": "300Mi"}}
    assert problems(minimal(resources=small)) == [
        "resources.limits.memory: 300Mi leaves each of 2 render processes 23068672 bytes, under the "
        "worker's minimum render budget (33554432); give at least 320Mi or fewer CPUs"
    ]
    fits = {"requests": {"cpu": "1", "memory": "200Mi"}, "limits": {"cpu": "2", "memory": "320Mi"}}
    assert parse_config(minimal(resources=fits)).render_share == (2, 32 * 2**20)


def test_every_problem_is_listed_at_once() -> None:
    found = problems(
        {"image": "x:latest", "canary": {"weight": 150}, "worker": {"concurrency": 0}, "bogus": 1}
    )
    assert found == [
        "cluster.identity: required",
        "image: must be pinned by digest (repository@sha256:<64 hex>), got tag 'x:latest'",
        "worker.concurrency: must be at least 1, got 0",
        "canary.weight: must be between 0 and 100, got 150",
        "monitoring.runbookBaseUrl: required",
        "artifacts.bucket: required when artifacts.store is s3",
        "bogus: unknown key",
        "redisUrl: required unless secrets.keys.REDIS_URL names a Vault property",
    ]


def test_error_text_lists_one_problem_per_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(minimal(image="x:1"), source="Pulumi.prod.yaml")
    assert str(info.value) == (
        "invalid stack config Pulumi.prod.yaml:\n"
        "  image: must be pinned by digest (repository@sha256:<64 hex>), got tag 'x:1'"
    )


def test_image_is_required() -> None:
    raw = minimal()
    del raw["image"]
    assert problems(raw) == ["image: required"]


def test_redis_url_comes_from_exactly_one_place() -> None:
    both = minimal(secrets={"provider": "external-secrets", "keys": {"REDIS_URL": "redis_url", **STORE_KEYS}})
    assert problems(both) == ["redisUrl: set either redisUrl or secrets.keys.REDIS_URL, not both"]
    vault_only = minimal(secrets={"provider": "vault", "keys": {"REDIS_URL": "url", **STORE_KEYS}})
    del vault_only["redisUrl"]
    assert parse_config(vault_only).redis_url is None


def test_defaults_and_secret_is_opaque() -> None:
    cfg = parse_config(minimal())
    assert (cfg.replicas.min, cfg.replicas.max, cfg.canary.weight, cfg.secrets.provider) == (
        2,
        6,
        0,
        "external-secrets",
    )
    assert isinstance(cfg.redis_url, Secret) and cfg.redis_url.ciphertext == "v1:abc:def"
    assert "v1:abc" not in repr(cfg)


def test_image_rule_is_shared() -> None:
    assert IMAGE_RE.fullmatch(IMAGE)
    assert IMAGE_RE.fullmatch(f"127.0.0.1:5000/mobius/preview-worker@sha256:{DIGEST}")
    assert validate_image_ref(f"localhost:5000/w@sha256:{DIGEST}")
    assert not IMAGE_RE.fullmatch(f"ghcr.io/x:tag@sha256:{DIGEST}")
    with pytest.raises(ValueError, match="got tag"):
        validate_image_ref("busybox:1.36")


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_committed_stack_files_are_valid(repo_root: Path, stack: str) -> None:
    cfg = load_stack_file(repo_root / f"Pulumi.{stack}.yaml")
    assert IMAGE_RE.fullmatch(cfg.image)
    assert cfg.effective_canary_weight <= 50 or stack != "prod"


def test_stack_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(
        "config:\n"
        "  mobius-preview-worker:cluster: {identity: local}\n"
        "  mobius-preview-worker:image: ghcr.io/x/y:latest\n"
        "  mobius-preview-worker:canary: {weight: 150}\n"
        "  mobius-preview-worker:redisUrl: {secure: v1:x:y}\n"
        "  mobius-preview-worker:artifacts: {bucket: previews}\n"
        "  mobius-preview-worker:secrets: {keys: {AWS_ACCESS_KEY_ID: a, AWS_SECRET_ACCESS_KEY: b}}\n"
        "  mobius-preview-worker:network: {s3Cidrs: [192.0.2.0/24]}\n"
        "  mobius-preview-worker:monitoring: {runbookBaseUrl: https://runbooks.example.com}\n"
        "  kubernetes:context: other   # a provider's key is not ours to check\n"
    )
    with pytest.raises(ConfigError) as info:
        load_stack_file(path)
    assert info.value.source == str(path)
    assert info.value.problems == [
        "image: must be pinned by digest (repository@sha256:<64 hex>), got tag 'ghcr.io/x/y:latest'",
        "canary.weight: must be between 0 and 100, got 150",
    ]


def test_unnamespaced_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text("config:\n  image: x\n")
    with pytest.raises(ConfigError, match="image: config keys need a namespace"):
        load_stack_file(path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"artifacts": {"store": "filesystem"}},
            "artifacts.store: filesystem keeps artifacts on each pod's own emptyDir, which the job API's "
            "pods (deployed in every stack) cannot read; use s3",
        ),
        ({"artifacts": {}}, "artifacts.bucket: required when artifacts.store is s3"),
        (
            {"artifacts": {"bucket": "Bad_Bucket"}},
            "artifacts.bucket: must be an S3 bucket name (3-63 of a-z 0-9 . -), got 'Bad_Bucket'",
        ),
        (
            {"artifacts": {"bucket": "b-1", "endpoint": "https://key:pw@s3.example"}},
            "artifacts.endpoint: must not carry credentials (they come from secrets.keys)",
        ),
        (
            {"worker": {"s3UrlTtlSeconds": 0}},
            "worker.s3UrlTtlSeconds: must be at least 1, got 0",
        ),
        (
            {"artifacts": {"bucket": "b-1", "store": "gcs"}},
            "artifacts.store: must be one of 'filesystem' or 's3', got 'gcs'",
        ),
        ({"api": {"replicas": {"min": 3, "max": 2}}}, "api.replicas.max: must be >= replicas.min (3), got 2"),
        ({"api": {"cpuTarget": 0}}, "api.cpuTarget: must be between 1 and 100, got 0"),
        (
            {"network": {"s3Cidrs": ["192.0.2.0/24"], "apiIngressNamespace": "Ingress"}},
            "network.apiIngressNamespace: must be a DNS-1123 label (lowercase letters, digits, '-', max 63),"
            " got 'Ingress'",
        ),
        (
            {"secrets": {"keys": {"AWS_ACCESS_KEY_ID": "a", "PREVIEW_API_TOKENS": "t"}}},
            "secrets.keys: artifacts.store s3 needs AWS_SECRET_ACCESS_KEY "
            "(S3 credentials come only from the vault, or secretValues in a local stack)",
        ),
        (
            {"secrets": {"keys": {k: v for k, v in STORE_KEYS.items() if k != "PREVIEW_API_TOKENS"}}},
            "secrets.keys: needs PREVIEW_API_TOKENS: the job API refuses to start without bearer tokens "
            "(from the vault, or secretValues in a local stack)",
        ),
        ({"network": {}}, "network.s3Cidrs: set s3Cidrs or s3Namespace so pods can reach the S3 endpoint"),
    ],
)
def test_store_and_api_keys_have_their_own_message(raw: dict[str, Any], expected: str) -> None:
    assert problems(minimal(**raw)) == [expected]


def test_store_defaults_and_namespace_peer() -> None:
    cfg = parse_config(minimal(network={"s3Namespace": "minio", "s3Port": 9000}))
    a, w = cfg.artifacts, cfg.worker
    got = (a.store, a.bucket, w.s3_region, w.s3_url_ttl_seconds, w.retention_days)
    assert got == ("s3", "previews", "us-east-1", 900, 0)
    assert (cfg.api.replicas.min, cfg.api.replicas.max, cfg.network.s3_port) == (2, 4, 9000)


@settings(max_examples=examples(500), deadline=None)
@given(st.one_of(st.text(max_size=70), st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9._/-]{0,66}\n?\Z")))
def test_every_queue_name_the_stack_accepts_the_worker_accepts(name: str) -> None:
    from worker.settings import Settings

    try:
        cfg = parse_config(minimal(worker={"queueName": name}))
    except ConfigError:
        return
    assert Settings(PREVIEW_QUEUE_NAME=cfg.worker.queue_name).queue_name == name


def test_the_stack_and_the_release_tool_share_one_duration_grammar() -> None:
    # Issue 17: the config accepted 1h30m while the rollout analysis took one unit only.
    from infra.config.fields.durations import duration_seconds

    assert parse_config(minimal(monitoring={"alertFor": "1h30m"})).monitoring.alert_for == "1h30m"
    assert parse_config(minimal(rollout={"interval": "1h30m"})).rollout.interval == "1h30m"
    for allow_zero in (True, False):
        assert duration_seconds("1h30m", allow_zero=allow_zero) == 5400
        assert duration_seconds("500ms", allow_zero=allow_zero) == 0.5
    for bad in ("30m1h", "1h1h", "10", "", "1h\n"):
        assert problems(minimal(monitoring={"alertFor": bad})) == [
            f"monitoring.alertFor: must be a duration like 30s, 10m or 1h, got {bad!r}"
        ]
        assert problems(minimal(rollout={"interval": bad})) == [
            f"rollout.interval: must be a duration like 30s, 10m or 1h, got {bad!r}"
        ]
        for allow_zero in (True, False):
            with pytest.raises(ValueError, match="must be a duration like"):
                duration_seconds(bad, allow_zero=allow_zero)


def test_a_duration_of_nothing_is_the_callers_choice() -> None:
    # An alert may fire at once (``for: 0s``); a rollout interval or window of nothing may not.
    from infra.config.fields.durations import duration_seconds

    assert parse_config(minimal(monitoring={"alertFor": "0s"})).monitoring.alert_for == "0s"
    assert duration_seconds("0s", allow_zero=True) == 0
    assert problems(minimal(rollout={"interval": "0s"})) == [
        "rollout.interval: must be a duration above zero like 30s, 10m or 1h, got '0s'"
    ]
    with pytest.raises(ValueError, match="above zero"):
        duration_seconds("0m", allow_zero=False)


def test_the_rollout_section_is_typed_and_checked_with_the_rest() -> None:
    # Issue 17: `rollout` was an untyped dict that only the release tool looked at.
    cfg = parse_config(minimal(rollout={"steps": [20, 100], "interval": "5m"}))
    assert (cfg.rollout.steps, cfg.rollout.interval, cfg.rollout.min_canary_jobs) == ([20, 100], "5m", 20)
    assert problems(minimal(rollout={"steps": [50, 10], "intervall": "5m"})) == [
        "rollout.steps: weights must increase, got [50, 10]",
        "rollout.intervall: unknown key",
    ]


def test_one_effective_canary_rule_for_the_program_and_the_release_tool(tmp_path: Path) -> None:
    from infra.config.fields.canary_weight import effective_weight
    from infra.tools.release.stackfile import CanaryState, ReleaseState

    assert (effective_weight(30, IMAGE), effective_weight(30, None), effective_weight(0, IMAGE)) == (30, 0, 0)
    assert parse_config(minimal(canary={"weight": 30, "image": IMAGE})).effective_canary_weight == 30
    assert parse_config(minimal(canary={"weight": 0, "image": None})).effective_canary_weight == 0
    assert ReleaseState(IMAGE, CanaryState(30, None), None).canary_weight == 0  # as the program deploys
    assert ReleaseState(IMAGE, CanaryState(30, IMAGE), None).canary_weight == 30


def test_every_stack_names_its_own_runbook_base_url() -> None:
    """No placeholder hides in a default: a stack without ``monitoring.runbookBaseUrl`` is refused."""
    raw = minimal()
    del raw["monitoring"]
    assert problems(raw) == ["monitoring.runbookBaseUrl: required"]
    raw["monitoring"] = {"failureRatio": 0.1}
    assert problems(raw) == ["monitoring.runbookBaseUrl: required"]
    assert problems(minimal(monitoring={"runbookBaseUrl": "https://x.example\n"})) == [
        "monitoring.runbookBaseUrl: must be an http(s) URL, got 'https://x.example\\n'"
    ]
