"""The stack config: one typed model, :class:`StackConfig`, and loading it from a stack.

Every default is declared once, on the model: here, in the section models beside this module,
and (the ``worker`` section) in :mod:`worker.tunables`.

A stack file (``Pulumi.<stack>.yaml``) holds its keys under the project
namespace, camelCase (``mobius-preview-worker:canary: {weight: 10, …}``).
:func:`parse_config` validates the un-namespaced mapping and raises
:class:`~infra.errors.ConfigError` listing *every* bad key with its reason;
:func:`load_stack_file` does the same for a file (the release tool uses it);
:func:`from_pulumi` builds the model from the running program's config.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from infra.config.base_model import CONFIG_NAMESPACE, Model, Secret, cross_field
from infra.config.cross_section import (
    memory_problems,
    redis_source_problem,
    secret_values_problems,
    store_problems,
)
from infra.config.fields.canary_weight import effective_weight
from infra.config.fields.durations import duration_seconds
from infra.config.fields.identifiers import check_dns_label, check_secret_names
from infra.config.fields.image_refs import DIGEST_RE, IMAGE_RE, check_image, split_image, validate_image_ref
from infra.config.fields.quantities import quantity
from infra.config.problems import problems_from
from infra.config.sections.autoscaling_config import Autoscaling
from infra.config.sections.cluster_target import ClusterTarget
from infra.config.sections.image_signature import ImageSignature
from infra.config.sections.monitoring_config import MonitoringConfig
from infra.config.sections.network_config import Network, SourceHost
from infra.config.sections.rollout_policy import RolloutConfig
from infra.config.sections.scheduling import Scheduling, Toleration
from infra.config.sections.secrets_config import SECRET_VALUES_KEY, RedisCa, Secrets, secret_values
from infra.config.sections.slo_config import Slos
from infra.config.sections.workload import Canary, CpuMemory, Replicas, Resources
from infra.config.store import Api, Artifacts
from infra.errors import ConfigError
from worker import constants as c
from worker.constants import ENV_REDIS_URL
from worker.queue import budget as redis_budget
from worker.tunables import Tunables

__all__ = [
    "CONFIG_NAMESPACE",
    "DIGEST_RE",
    "IMAGE_RE",
    "LOCAL_DEV_PASSPHRASE",
    "Api",
    "Artifacts",
    "Autoscaling",
    "Canary",
    "ClusterTarget",
    "ConfigError",
    "CpuMemory",
    "ImageSignature",
    "MonitoringConfig",
    "Network",
    "RedisCa",
    "Replicas",
    "Resources",
    "Scheduling",
    "Secret",
    "Secrets",
    "Slos",
    "SourceHost",
    "StackConfig",
    "Toleration",
    "Tunables",
    "from_pulumi",
    "load_stack_file",
    "parse_config",
    "split_image",
    "validate_image_ref",
]

#: A release id (``r-20261120-01``): short enough for a label value, as the release tool writes them.
RELEASE_ID_RE = re.compile(c.RELEASE_PATTERN)

#: Passphrase of the ``dev`` stack's secrets (the embedded local cluster only; not a secret).
LOCAL_DEV_PASSPHRASE = "mobius-local-dev"
#: ``readyTimeout``'s bounds: shorter fails a healthy rollout of a large image, longer hides a stuck one.
READY_TIMEOUT_MIN_SECONDS, READY_TIMEOUT_MAX_SECONDS = 30, 3600


class StackConfig(Model):
    """Everything a stack deploys, validated once. Defaults live here only."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    # Which cluster this stack deploys to (required: a stack is bound to its cluster).
    cluster: ClusterTarget = Field(default_factory=dict, validate_default=True)
    namespace: str = "preview-worker"
    image: str
    release_id: str | None = None
    # Who must have signed the images (infra/config/sections/image_signature.py): unset, no check.
    image_signature: ImageSignature | None = None
    replicas: Replicas = Replicas()
    # Which nodes take the stack's pods (infra/config/sections/scheduling.py): unset, any node.
    scheduling: Scheduling = Scheduling()
    # What each worker (and API) process is told: worker/tunables.py declares every key once.
    worker: Tunables = Tunables()
    resources: Resources = Resources()
    canary: Canary = Canary()
    autoscaling: Autoscaling = Autoscaling()
    secrets: Secrets = Secrets()
    # No usable default (runbookBaseUrl is the stack's own), so a stack without it is told why.
    monitoring: MonitoringConfig = Field(default_factory=dict, validate_default=True)
    # The availability and latency SLOs and their burn-rate alerts (infra/config/sections/slo_config.py).
    slos: Slos = Slos()
    network: Network = Network()
    api: Api = Api()
    # No usable default (a bucket is required), so a stack without the section is told why.
    artifacts: Artifacts = Field(default_factory=dict, validate_default=True)
    source_hosts: list[SourceHost] = Field(default_factory=list)
    # The Redis memory the queue's jobs may hold at most (a quantity); it sets the inline cap.
    redis_budget: str = "2Gi"
    # Jobs naming a file (`source.path`) are refused unless a stack opts in (PREVIEW_PATH_SOURCES).
    path_sources: bool = False
    # docker-registry Secrets (in the stack's namespace) the pods pull a private image with.
    image_pull_secrets: list[str] = Field(default_factory=list)
    redis_url: Secret | None = None
    # Secret env values held in the stack file as Pulumi secrets (SECRET_VALUES_KEY): local stacks only.
    secret_values: dict[str, Secret] = Field(default_factory=dict)
    # Protect the Namespace and the objects holding state or identity (HOLDS_STATE): the engine
    # refuses to delete them, so a destroy or a rename cannot wipe the stack. Prod sets it.
    protect: bool = False
    # Deploy into an existing, platform-owned Namespace named `namespace`: the stack neither
    # creates nor deletes it (nor sets its labels); destroy removes only the stack's objects.
    existing_namespace: bool = False
    # A private CA for Redis's TLS certificate, mounted at worker.constants.REDIS_CA_PATH.
    redis_ca: RedisCa | None = None
    # The release tool's progressive rollout and its analysis (infra/config/sections/rollout_policy.py).
    rollout: RolloutConfig = RolloutConfig()
    # How long `pulumi up` waits for each Deployment to be Available (its pods Ready by their probes)
    # before it fails with the pods' reason; the engine's own default is 10m.
    ready_timeout: str = "10m"

    _ns = field_validator("namespace")(check_dns_label)
    _image = field_validator("image")(check_image)
    _pull_secrets = field_validator("image_pull_secrets")(check_secret_names)

    @field_validator("secret_values", mode="before")
    @classmethod
    def _secret_values(cls, v: object) -> object:
        return secret_values(v)

    @field_validator("redis_budget")
    @classmethod
    def _budget(cls, v: str) -> str:
        size = quantity(v, "memory")
        if not c.REDIS_BUDGET_BYTES_MIN <= size <= c.REDIS_BUDGET_BYTES_MAX:
            lo, hi = c.REDIS_BUDGET_BYTES_MIN // 2**20, c.REDIS_BUDGET_BYTES_MAX // 2**30
            raise ValueError(f"must be between {lo}Mi and {hi}Gi, got {v!r}")
        return v

    @field_validator("ready_timeout")
    @classmethod
    def _ready_timeout(cls, v: str) -> str:
        seconds = duration_seconds(v, allow_zero=False)
        if not READY_TIMEOUT_MIN_SECONDS <= seconds <= READY_TIMEOUT_MAX_SECONDS:
            raise ValueError(f"must be a duration between 30s and 1h, got {v!r}")
        return v

    @property
    def ready_timeout_seconds(self) -> float:
        """``readyTimeout`` in seconds."""
        return duration_seconds(self.ready_timeout, allow_zero=False)

    @field_validator("release_id", mode="before")
    @classmethod
    def _empty_release(cls, v: object) -> object:
        return None if v == "" else v

    @field_validator("release_id")
    @classmethod
    def _release(cls, v: str | None) -> str | None:
        if v is not None and not RELEASE_ID_RE.fullmatch(v):
            raise ValueError(f"{c.RELEASE_RULE}, got {v[:80]!r}")
        return v

    @field_validator("redis_url", mode="before")
    @classmethod
    def _secret(cls, v: object) -> object:
        if isinstance(v, Mapping) and set(v) == {"secure"} and isinstance(v["secure"], str):
            return Secret(ciphertext=v["secure"])
        if isinstance(v, str):
            raise ValueError("must be a secret: set it with `pulumi config set --secret redisUrl …`")
        if v is None or isinstance(v, Secret):
            return v
        raise ValueError("must be a secret ({secure: …}), got a " + type(v).__name__)

    @model_validator(mode="after")
    def _cross_section(self) -> StackConfig:
        problem = redis_source_problem(self.redis_url is not None, ENV_REDIS_URL in self.secrets.keys)
        problems = [("redisUrl", problem)] if problem else []
        problems += secret_values_problems(self)
        problems += store_problems(self)
        problems += memory_problems(self)
        if problems:
            raise cross_field(*problems)
        return self

    @property
    def render_share(self) -> tuple[int, int]:
        """Render processes and each one's memory budget, from the worker container's limits.

        One process per whole CPU of the limit (at most ``concurrency``); each gets an equal share
        of the memory limit left after the consumer's and the processes' own interpreters. A share
        under the worker's minimum is a config error
        (:func:`~infra.config.cross_section.memory_problems`), never raised silently.
        """
        processes = max(
            1, min(self.worker.concurrency, math.floor(quantity(self.resources.limits.cpu, "cpu")))
        )
        memory = quantity(self.resources.limits.memory, "memory")
        share = (memory - c.WORKER_BASE_MEMORY_BYTES) / processes - c.RENDER_PROCESS_BASE_MEMORY_BYTES
        return processes, int(min(share, c.RENDER_MEMORY_BYTES_MAX))

    @property
    def redis_budget_bytes(self) -> int:
        return int(quantity(self.redis_budget, "memory"))

    @property
    def inline_bytes(self) -> int:
        """The worker's inline cap (``worker.queue.budget.inline_cap``, as the worker computes it)."""
        held = redis_budget.held_by(self.worker)
        return redis_budget.inline_cap(
            self.redis_budget_bytes, held, self.worker.max_inline_bytes, _BUDGET_NAMES
        )

    @property
    def effective_canary_weight(self) -> int:
        """The canary weight actually deployed (``fields.canary_weight.effective_weight``)."""
        return effective_weight(self.canary.weight, self.canary.image)


_BUDGET_NAMES = {
    "budget": "redisBudget",
    "inline": "worker.maxInlineBytes",
    "counts": "worker.queueMax + worker.keep*Count",
}


def parse_config(raw: Mapping[str, object], source: str | None = None) -> StackConfig:
    """Validate un-namespaced config keys; raise ConfigError listing every problem."""
    try:
        return StackConfig.model_validate(dict(raw))
    except ValidationError as exc:
        problems = problems_from(exc)
    # Cross-field rules run only once every field is valid; this one depends on no other
    # field's validity, so report it now rather than on the next attempt.
    secrets = raw.get("secrets")
    keys = secrets.get("keys") if isinstance(secrets, Mapping) else None
    from_vault = isinstance(keys, Mapping) and ENV_REDIS_URL in keys
    problem = redis_source_problem(raw.get("redisUrl") is not None, from_vault)
    if problem and not any(p.startswith("redisUrl:") for p in problems):
        problems.append(f"redisUrl: {problem}")
    raise ConfigError(problems, source)


def strip_namespace(config: Mapping[str, object], source: str | None = None) -> dict[str, object]:
    """Keep this project's keys (``mobius-preview-worker:x`` → ``x``); other namespaces are the providers'."""
    raw: dict[str, object] = {}
    for key, value in config.items():
        ns, sep, name = str(key).partition(":")
        if sep and ns == CONFIG_NAMESPACE:
            raw[name] = value
        elif not sep:
            raise ConfigError([f"{key}: config keys need a namespace, e.g. {CONFIG_NAMESPACE}:{key}"], source)
    return raw


def load_stack_file(path: str | Path) -> StackConfig:
    """Read and validate a ``Pulumi.<stack>.yaml``; ``{secure: …}`` values stay opaque."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"<file>: cannot read stack file: {exc}"], str(path)) from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("config", {}), Mapping):
        raise ConfigError(["config: must be a mapping"], str(path))
    return parse_config(strip_namespace(doc.get("config") or {}, str(path)), str(path))


def from_pulumi() -> StackConfig:
    """Build the model from the running Pulumi program's config (fails before any resource)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    raw = strip_namespace({k: v for k, v in merged.items() if ":" in k}, pulumi.get_stack())
    for key, value in list(raw.items()):
        if isinstance(value, str) and value[:1] in "[{":
            # Pulumi passes structured values as JSON; a plain string may start with a bracket too.
            with contextlib.suppress(json.JSONDecodeError):
                raw[key] = json.loads(value)
    secret_keys = set(runtime_config.get_config_secret_keys_env())

    def is_secret(key: str) -> bool:
        full_key = f"{CONFIG_NAMESPACE}:{key}"
        return runtime_config.is_config_secret(full_key) or full_key in secret_keys

    if "redisUrl" in raw and is_secret("redisUrl"):
        raw["redisUrl"] = Secret(output=pulumi.Config(CONFIG_NAMESPACE).require_secret("redisUrl"))
    values = raw.get(SECRET_VALUES_KEY)
    if isinstance(values, Mapping) and is_secret(SECRET_VALUES_KEY):
        # The engine marks the whole key secret when any value under it is ({secure: …}); each
        # value stays a secret Output. A key with no secure value keeps its plain strings, refused.
        whole = pulumi.Config(CONFIG_NAMESPACE).require_secret_object(SECRET_VALUES_KEY)

        def item(env: str) -> pulumi.Output[str]:
            return whole.apply(lambda held: str(held[env]))

        raw[SECRET_VALUES_KEY] = {env: Secret(output=item(str(env))) for env in values}
    try:
        return parse_config(raw, f"stack {pulumi.get_stack()}")
    except ConfigError as exc:
        # Also a RunError: the engine then prints the message alone, with no Python traceback.
        class EngineConfigError(ConfigError, pulumi.RunError):
            """A ConfigError the language host reports as a clean program failure."""

        raise EngineConfigError(exc.problems, exc.source) from None
