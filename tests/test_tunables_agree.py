"""The two halves agree (issue 17): every config the stack accepts renders env the worker accepts,
and every tunable value the worker accepts is one the stack accepts.

Both directions are generated (hypothesis) over every field of ``worker.tunables.Tunables`` and the
settings the stack derives (source hosts, the Redis budget, the render share, the release id, the
``release`` label from the image). The forward direction renders the env with the functions the
program itself calls for the ConfigMaps (``infra.manifests.env.config_data``,
``infra.manifests.job_api.api_config_data``) and the containers (``infra.manifests.pod.identity_env``);
one test runs the whole program under mocks, as ``python -m infra snapshot`` does, and reads the
ConfigMaps it declared.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from infra.config.model import ConfigError, StackConfig, parse_config
from infra.manifests.env import config_data
from infra.manifests.job_api import api_config_data
from infra.manifests.pod import identity_env, version_label
from infra.tools.snapshot.harness import run_program
from worker import constants as c
from worker.settings import Settings
from worker.tunables import Tunables, env_name, to_env

IMAGE = "ghcr.io/mobius/preview-worker@sha256:" + "a" * 64
STORE_KEYS = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s", "PREVIEW_API_TOKENS": "t"}


def minimal(**extra: Any) -> dict[str, Any]:
    return {
        "cluster": {"identity": "local"},
        "image": IMAGE,
        "redisUrl": {"secure": "v1:opaque"},
        "artifacts": {"bucket": "previews"},
        "secrets": {"keys": STORE_KEYS},
        "network": {"s3Cidrs": ["192.0.2.0/24"]},
        "monitoring": {"runbookBaseUrl": "https://runbooks.example.com"},
        **extra,
    }


def _bounds(field: Any) -> tuple[float, float]:
    lo, hi = -(2**40), 2**40
    for rule in field.metadata:
        lo = getattr(rule, "ge", None) or getattr(rule, "gt", None) or lo
        hi = getattr(rule, "le", None) or getattr(rule, "lt", None) or hi
    return lo, hi


def value_of(name: str) -> st.SearchStrategy[Any]:
    """Values near and past a tunable's bounds, of its type and of others, hostile ones included."""
    field = Tunables.model_fields[name]
    choices = getattr(field.annotation, "__args__", None)
    if choices:
        return st.sampled_from(choices) | st.text(max_size=12)
    if field.annotation in (int, "int"):
        lo, hi = _bounds(field)
        edges = st.sampled_from([lo - 1, lo, lo + 1, hi - 1, hi, hi + 1])
        return edges | st.integers(int(lo) - 5, min(int(hi) + 5, 2**41)) | st.floats(lo - 2, hi + 2)
    if field.annotation in (float, "float"):
        lo, hi = _bounds(field)
        return st.floats(allow_nan=True, allow_infinity=True) | st.floats(lo - 1, hi + 1) | st.just(lo)
    patterns = [m.pattern for m in field.metadata if getattr(m, "pattern", None)]
    near = [st.from_regex(re.compile(p.replace("^$|", "")), fullmatch=True) for p in patterns]
    return st.one_of(*near, st.text(max_size=80), st.from_regex(r"\A[a-z0-9_./-]{0,70}\n?\Z"))


@st.composite
def tunables(draw: st.DrawFn, max_fields: int = 8) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(sorted(Tunables.model_fields)), max_size=max_fields, unique=True))
    return {to_camel(n): draw(value_of(n)) for n in names}


host = st.from_regex(r"\A[a-z0-9.:/-]{1,40}\Z") | st.text(max_size=20)
source_hosts = st.lists(
    st.fixed_dictionaries(
        {"host": host, "cidrs": st.just(["203.0.113.0/24"]), "port": st.integers(0, 70000)}
    ),
    max_size=3,
)
resources = st.fixed_dictionaries(
    {
        "requests": st.just({"cpu": "100m", "memory": "128Mi"}),
        "limits": st.fixed_dictionaries(
            {
                "cpu": st.sampled_from(["500m", "1", "2", "4"]),
                "memory": st.sampled_from(["256Mi", "512Mi", "2Gi"]),
            }
        ),
    }
)
stack_extra = st.fixed_dictionaries(
    {},
    optional={
        "sourceHosts": source_hosts,
        "redisBudget": st.sampled_from(["16Mi", "256Mi", "2Gi", "1Ti", "2Ti", "lots"]),
        "pathSources": st.booleans(),
        "resources": resources,
        "releaseId": st.from_regex(r"\A[a-z0-9.-]{0,70}\Z") | st.text(max_size=10),
        "image": st.from_regex(r"\Aghcr\.io/[a-z]{1,8}/w@sha256:[0-9a-f]{64}\Z") | st.text(max_size=10),
    },
)


def worker_settings(env: dict[str, str]) -> Settings:
    """The worker's settings from exactly this env (as init values: os.environ is not read for them)."""
    return Settings(**env)


def rendered_env(cfg: StackConfig) -> list[dict[str, str]]:
    """Each process's env: its ConfigMap's, and its container's track and release (the metric labels)."""
    own = {track: {e["name"]: e["value"] for e in identity_env(track, cfg.image)} for track in c.TRACKS}
    workers = [{**config_data(cfg), **own[track]} for track in c.TRACKS]
    return [*workers, {**api_config_data(cfg), **own[c.TRACK_STABLE]}]


@settings(max_examples=400, deadline=None)
@given(tunables(), stack_extra)
def test_every_config_the_stack_accepts_the_worker_accepts(
    worker: dict[str, Any], extra: dict[str, Any]
) -> None:
    try:
        cfg = parse_config(minimal(worker=worker, **extra))
    except ConfigError:
        return
    for env in rendered_env(cfg):
        assert not set(env) & c.SECRET_ENV_VARS
        got = worker_settings(env)  # raises ValidationError if the worker would exit 2
        for name in Tunables.model_fields:
            assert getattr(got, name) == getattr(cfg.worker, name), name
        assert got.release == version_label(cfg.image)
    assert got.inline_bytes == cfg.inline_bytes and got.redis_budget_bytes == cfg.redis_budget_bytes


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(sorted(Tunables.model_fields)).flatmap(lambda n: st.tuples(st.just(n), value_of(n))))
def test_every_tunable_value_the_worker_accepts_the_stack_accepts(case: tuple[str, Any]) -> None:
    name, value = case
    try:
        got = getattr(worker_settings({env_name(name): str(value)}), name)
    except ValidationError as refused:
        # And the reverse: what the worker refuses, the stack refuses; a bad value of the key is
        # named as the key (a rule across keys, such as the Redis budget, names the rule's keys).
        with pytest.raises(ConfigError) as info:
            parse_config(minimal(worker={to_camel(name): str(value)}, **_ROOMY))
        if any(e["loc"] for e in refused.errors()):
            assert any(p.startswith(f"worker.{to_camel(name)}: ") for p in info.value.problems), info.value
        return
    for given_as in (str(value), got):  # as a stack file's string, and typed (Pulumi's JSON)
        cfg = parse_config(minimal(worker={to_camel(name): given_as}, **_ROOMY))
        assert getattr(cfg.worker, name) == got


#: A stack roomy enough that no rule of the stack's own (the API's memory against its body cap)
#: refuses a value the worker takes: those rules span keys the worker does not know.
_ROOMY = {
    "api": {
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "20Gi"},  # 8 times the largest body budget
        }
    }
}


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        # Issue 17's three cases: each was deployable while every worker pod exited 2 at start.
        ("queueName", "jobs/v2", f"must match {c.QUEUE_NAME_PATTERN}"),
        ("concurrency", 300, "must be at most 256"),
        ("s3Region", "", f"must match {c.S3_REGION_PATTERN}"),
    ],
)
def test_the_stack_refuses_what_the_worker_refuses(key: str, value: Any, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(minimal(worker={key: value}))
    assert info.value.problems == [f"worker.{key}: {reason}, got {value!r}"]


def test_concurrency_and_drain_share_one_range_and_default() -> None:
    # Concurrency was 1-256 in the worker and 1-64 in the stack; drainSeconds was set in both.
    cfg = parse_config(minimal(worker={"concurrency": 200, "drainSeconds": 0.5}))
    env = config_data(cfg)
    assert (env[c.ENV_CONCURRENCY], env[c.ENV_DRAIN_SECONDS]) == ("200", "0.5")
    assert worker_settings(env).concurrency == 200
    defaults = parse_config(minimal()).worker
    assert defaults == Tunables() and Settings().s3_region == defaults.s3_region == "us-east-1"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            {"sourceHosts": [{"host": "https://cdn.example", "cidrs": ["203.0.113.0/24"]}]},
            "sourceHosts.0.host: must be a host name without scheme or port (the port is `port`), "
            "got 'https://cdn.example'",
        ),
        (
            {"sourceHosts": [{"host": "cdn.example:8443", "cidrs": ["203.0.113.0/24"]}]},
            "sourceHosts.0.host: must be a host name without scheme or port (the port is `port`), "
            "got 'cdn.example:8443'",
        ),
        (
            {"releaseId": "r" * 202},
            f"releaseId: must be 1-63 of A-Z a-z 0-9 . _ - starting with a letter or digit, got {'r' * 80!r}",
        ),
    ],
)
def test_derived_values_the_worker_would_refuse_are_refused(extra: dict[str, Any], problem: str) -> None:
    # Issue 16, item 11: `sourceHosts.host` given as a URL or with a port, a 202-character releaseId.
    with pytest.raises(ConfigError) as info:
        parse_config(minimal(**extra))
    assert info.value.problems == [problem]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tunables(max_fields=4))
def test_the_programs_configmaps_are_what_the_worker_accepts(worker: dict[str, Any]) -> None:
    try:
        cfg = parse_config(minimal(worker=worker))
    except ConfigError:
        return
    run = run_program("dev", overrides={"worker": cfg.worker.model_dump(by_alias=True)})
    for name in ("preview-worker-config", "preview-worker-api-config"):
        data = run.object("ConfigMap", name)["data"]
        assert to_env(cfg.worker).items() <= data.items()
        got = worker_settings(data)
        assert all(getattr(got, n) == getattr(cfg.worker, n) for n in Tunables.model_fields)
