"""The worker's whole configuration, read from the environment and validated once.

Each default is declared once: a tunable's in :mod:`worker.tunables`, every other setting's
here (from the bounds and ports in :mod:`worker.constants`, which also names the env vars).
Invalid settings end the process with one line per bad value on stderr and exit status 2, and
an unknown ``PREVIEW_*`` variable (a typo that would silently fall back to a default) is named
on stderr with the closest known one (see :func:`load_or_exit`).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasGenerator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from mobius_preview_client.config import ClientConfig, redis_url_problem
from worker import constants as c
from worker.queue import budget
from worker.tunables import Tunables, check_endpoint_url, env_name

EXIT_BAD_SETTINGS = 2


#: The env var of each setting that is not a tunable (the tunables name theirs in worker/tunables.py).
_OWN_ENV = {
    "redis_url": c.ENV_REDIS_URL,
    "data_dir": c.ENV_DATA_DIR,
    "api_host": c.ENV_API_HOST,
    "api_port": c.ENV_API_PORT,
    "api_tokens": c.ENV_API_TOKENS,
    "api_auth": c.ENV_API_AUTH,
    "metrics_port": c.ENV_METRICS_PORT,
    "track": c.ENV_TRACK,
    "release": c.ENV_RELEASE,
    "input_root": c.ENV_INPUT_ROOT,
    "path_sources": c.ENV_PATH_SOURCES,
    "source_hosts": c.ENV_SOURCE_HOSTS,
    "redis_budget_bytes": c.ENV_REDIS_BUDGET_BYTES,
    "render_processes": c.ENV_RENDER_PROCESSES,
    "render_memory_bytes": c.ENV_RENDER_MEMORY_BYTES,
    "artifact_store": c.ENV_ARTIFACT_STORE,
    "s3_bucket": c.ENV_S3_BUCKET,
    "s3_endpoint": c.ENV_S3_ENDPOINT,
    "s3_public_endpoint": c.ENV_S3_PUBLIC_ENDPOINT,
    "worker_processes": c.ENV_WORKER_PROCESSES,
}


def env_of(field: str) -> str:
    """The env var a setting is read from (a tunable's, or one of :data:`_OWN_ENV`)."""
    return _OWN_ENV[field] if field in _OWN_ENV else env_name(field)


class Settings(Tunables, BaseSettings):
    """Typed settings; each field reads exactly one env var named in ``worker.constants``.

    The tunables (:class:`worker.tunables.Tunables`) are inherited, so their defaults and bounds are
    the stack's too. The fields below are the ones a stack derives, fixes by the pod's layout, or
    takes from a Secret; they are not stack keys.
    """

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", populate_by_name=True,
        alias_generator=AliasGenerator(validation_alias=env_of),
    )  # fmt: skip

    redis_url: str = "redis://127.0.0.1:6379"
    data_dir: Path = Path("./data")
    api_host: str = Field(default="0.0.0.0", min_length=1)
    api_port: int = Field(default=c.API_PORT, ge=0, le=65535)
    api_tokens: SecretStr = SecretStr("")
    api_auth: Literal["tokens", "off"] = "tokens"
    metrics_port: int = Field(default=c.METRICS_PORT, ge=0, le=65535)
    track: Literal["stable", "canary"] = c.TRACK_STABLE
    # The `release` label of every series; the stack sets the image digest's short form.
    release: str = c.RELEASE_LOCAL
    input_root: Path = Path("./data/inputs")
    path_sources: Literal["on", "off"] = "on"
    source_hosts: str = ""
    redis_budget_bytes: int = Field(
        default=c.REDIS_BUDGET_BYTES_DEFAULT, ge=c.REDIS_BUDGET_BYTES_MIN, le=c.REDIS_BUDGET_BYTES_MAX
    )
    # 0: one per core this process may use, at most `concurrency`
    render_processes: int = Field(default=0, ge=0, le=c.RENDER_PROCESSES_MAX)
    render_memory_bytes: int = Field(
        default=c.RENDER_MEMORY_BYTES_DEFAULT, ge=c.RENDER_MEMORY_BYTES_MIN, le=c.RENDER_MEMORY_BYTES_MAX
    )
    # Artifact store (issue 8); S3 credentials come from botocore's chain, never from here.
    artifact_store: Literal["filesystem", "s3"] = c.STORE_FILESYSTEM
    s3_bucket: str = Field(default="", validate_default=True)
    s3_endpoint: str = ""
    s3_public_endpoint: str = ""
    worker_processes: int = Field(default=1, ge=1, le=64)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if problem := redis_url_problem(value):  # says what is malformed, never the URL
            raise ValueError(problem)
        return value

    @field_validator("release")
    @classmethod
    def _release(cls, value: str) -> str:
        if not re.fullmatch(c.RELEASE_PATTERN, value):
            raise ValueError(
                f"must be 1-63 of A-Z a-z 0-9 . _ - starting with a letter or digit, got {value[:80]!r}"
            )
        return value

    @field_validator("api_tokens")
    @classmethod
    def _tokens(cls, value: SecretStr) -> SecretStr:
        from worker.api.auth import parse_tokens

        parse_tokens(value.get_secret_value())  # ValueError names the entry, never the token
        return value

    @field_validator("source_hosts")
    @classmethod
    def _hosts(cls, value: str) -> str:
        for entry in _split(value):
            host, sep, port = entry.rpartition(":") if ":" in entry else (entry, "", "")
            if not re.fullmatch(c.SOURCE_HOST_PATTERN, host) or (
                sep and not (port.isdigit() and 1 <= int(port) <= 65535)
            ):
                raise ValueError(f"{entry[:80]!r} is not a host or host:port")
        return value

    @field_validator("s3_bucket")
    @classmethod
    def _bucket(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("artifact_store") == c.STORE_S3 and not re.fullmatch(c.S3_BUCKET_PATTERN, value):
            raise ValueError(f"{c.ENV_S3_BUCKET} must name a bucket (3-63 of a-z 0-9 . -) for the s3 store")
        return value

    @field_validator("s3_endpoint", "s3_public_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return check_endpoint_url(value, "botocore reads them from its own chain")

    @model_validator(mode="after")
    def _fits_redis(self) -> Settings:
        try:
            budget.inline_cap(self.redis_budget_bytes, self.held_jobs, self.max_inline_bytes, _BUDGET_NAMES)
        except budget.BudgetError as err:
            raise ValueError(f"{err.key}: {err.reason}") from None
        return self

    @property
    def inline_bytes(self) -> int:
        """The inline-source cap in force: the setting, or the largest the Redis budget allows."""
        if self.max_inline_bytes:
            return self.max_inline_bytes  # checked against the budget when the settings were made
        return budget.auto_inline(self.redis_budget_bytes, self.held_jobs)

    @property
    def held_jobs(self) -> budget.Held:
        """The most jobs Redis holds: the queue cap plus every retention count."""
        return budget.held_by(self)

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Lower-cased ``host`` or ``host:port`` entries allowed as URL sources."""
        return frozenset(h.lower() for h in _split(self.source_hosts))

    @property
    def render_pool_size(self) -> int:
        """Render processes of this consumer: the setting, or one per usable core; never over concurrency."""
        size = self.render_processes or len(os.sched_getaffinity(0))
        return max(1, min(size, self.concurrency))

    def client_config(self) -> ClientConfig:
        """The producer client's options that make it enqueue as this worker expects."""
        return ClientConfig(
            self.redis_url,
            queue_name=self.queue_name,
            queue_max=self.queue_max,
            job_attempts=self.job_attempts,
            backoff_ms=self.backoff_ms,
            max_inline_bytes=self.inline_bytes,
            path_sources=self.path_sources == "on",
        )

    @property
    def dlq_name(self) -> str:
        """Name of the dead-letter queue, ``<queue>-dlq``."""
        return self.queue_name + c.DLQ_SUFFIX

    @property
    def redacted_redis_url(self) -> str:
        """The Redis URL safe to print: any password replaced by ``***``."""
        return redact_url(self.redis_url)


_BUDGET_NAMES = {
    "budget": c.ENV_REDIS_BUDGET_BYTES,
    "inline": c.ENV_MAX_INLINE_BYTES,
    "counts": f"{c.ENV_QUEUE_MAX} + PREVIEW_KEEP_*_COUNT",
}


def _split(value: str) -> list[str]:
    return [h.strip() for h in value.split(",") if h.strip()]


def redact_url(url: str) -> str:
    """Return ``url`` with its passwords (the server's, a sentinel's) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    creds, at, tail = rest.rpartition("@") if "@" in rest.split("/", 1)[0] else ("", "", rest)
    if at and ":" in creds:
        rest = f"{creds.split(':', 1)[0]}:***@{tail}"
    rest = re.sub(r"((?:sentinel_)?password=)[^&]*", r"\1***", rest)
    return f"{scheme}{sep}{rest}"


def describe(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        if not e["loc"]:  # a rule across settings: its message names them; the input holds secrets
            lines.append(f"invalid settings: {e['msg'].removeprefix('Value error, ')}")
            continue
        name = str(e["loc"][0])
        value = e.get("input")
        if isinstance(value, str):
            value = redact_url(value)  # a URL's password is scrubbed even where it is refused
        shown = "<redacted>" if name in c.SECRET_ENV_VARS else repr(value)
        lines.append(f"invalid setting {name}={shown}: {e['msg']}")
    return lines


#: The prefix of the worker's own env vars; an unknown one is named by :func:`unknown_env`.
ENV_PREFIX = "PREVIEW_"


def known_env() -> frozenset[str]:
    """Every env var the worker reads: each setting's and the others named in ``worker.constants``."""
    declared = {getattr(c, name) for name in dir(c) if name.startswith("ENV_")}
    return frozenset(declared | {env_of(field) for field in Settings.model_fields})


def unknown_env(environ: Mapping[str, str]) -> list[str]:
    """One warning per ``PREVIEW_*`` name in ``environ`` the worker does not read (never its value)."""
    known = sorted(n.removeprefix(ENV_PREFIX) for n in known_env() if n.startswith(ENV_PREFIX))
    warnings = []
    for name in sorted(n for n in environ if n.startswith(ENV_PREFIX)):
        if (rest := name.removeprefix(ENV_PREFIX)) in known:
            continue
        # Compared without the shared prefix, which would make every name look close.
        close = difflib.get_close_matches(rest, known, n=1)
        hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
        warnings.append(f"warning: {name} is not a setting of the worker and is ignored{hint}")
    return warnings


def load_or_exit(warn_unknown: bool = True) -> Settings:
    """Load settings from the environment, or print every bad value and exit 2.

    With ``warn_unknown`` (every process but a supervised child, whose supervisor has said it),
    each unknown ``PREVIEW_*`` variable is named on stderr first.
    """
    if warn_unknown:
        for line in unknown_env(os.environ):
            print(line, file=sys.stderr)
    try:
        return Settings()
    except ValidationError as err:
        for line in describe(err):
            print(line, file=sys.stderr)
        raise SystemExit(EXIT_BAD_SETTINGS) from None
