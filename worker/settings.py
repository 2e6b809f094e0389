"""The worker's whole configuration, read from the environment and validated once.

Defaults live here and nowhere else; the env var names come from
``worker.constants``. Invalid settings end the process with one line per bad
value on stderr and exit status 2 (see :func:`load_or_exit`).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker import constants as c
from worker import redis_budget

EXIT_BAD_SETTINGS = 2
QUEUE_NAME_PATTERN = c.QUEUE_NAME_PATTERN
S3_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
S3_PREFIX_PATTERN = r"^$|^[A-Za-z0-9!_.*()'-][A-Za-z0-9!_.*()'/-]{0,254}$"


def check_endpoint_url(value: str, credentials_from: str) -> str:
    """An S3 endpoint: empty, or an http(s) URL with a host, no path and no credentials.

    Shared by these settings and the stack config (``infra/config_store.py``);
    ``credentials_from`` says, in the error, where credentials come from instead.
    """
    if not value:
        return value
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"must not carry credentials ({credentials_from})")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
        raise ValueError(f"must be an http:// or https:// URL with a host and no path, got {value!r}")
    return value


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class Settings(BaseSettings):
    """Typed settings; each field reads exactly one env var named in ``worker.constants``."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    redis_url: str = Field(default="redis://127.0.0.1:6379", validation_alias=c.ENV_REDIS_URL)
    queue_name: str = Field(
        default="preview-jobs", validation_alias=c.ENV_QUEUE_NAME, pattern=QUEUE_NAME_PATTERN
    )
    concurrency: int = Field(default=2, validation_alias=c.ENV_CONCURRENCY, ge=1, le=256)
    queue_max: int = Field(default=20, validation_alias=c.ENV_QUEUE_MAX, ge=1)
    data_dir: Path = Field(default=Path("./data"), validation_alias=c.ENV_DATA_DIR)
    api_host: str = Field(default="0.0.0.0", validation_alias=c.ENV_API_HOST, min_length=1)
    api_port: int = Field(default=c.API_PORT, validation_alias=c.ENV_API_PORT, ge=0, le=65535)
    keep_completed_seconds: int = Field(
        default=c.KEEP_DEFAULTS["completed_seconds"],
        validation_alias=c.ENV_KEEP_COMPLETED_SECONDS,
        ge=1,
        le=c.KEEP_SECONDS_MAX,
    )
    keep_completed_count: int = Field(
        default=c.KEEP_DEFAULTS["completed_count"],
        validation_alias=c.ENV_KEEP_COMPLETED_COUNT,
        ge=0,
        le=c.KEEP_COUNT_MAX,
    )
    keep_failed_seconds: int = Field(
        default=c.KEEP_DEFAULTS["failed_seconds"],
        validation_alias=c.ENV_KEEP_FAILED_SECONDS,
        ge=1,
        le=c.KEEP_SECONDS_MAX,
    )
    keep_failed_count: int = Field(
        default=c.KEEP_DEFAULTS["failed_count"],
        validation_alias=c.ENV_KEEP_FAILED_COUNT,
        ge=0,
        le=c.KEEP_COUNT_MAX,
    )
    keep_dlq_seconds: int = Field(
        default=c.KEEP_DEFAULTS["dlq_seconds"],
        validation_alias=c.ENV_KEEP_DLQ_SECONDS,
        ge=1,
        le=c.KEEP_SECONDS_MAX,
    )
    keep_dlq_count: int = Field(
        default=c.KEEP_DEFAULTS["dlq_count"], validation_alias=c.ENV_KEEP_DLQ_COUNT, ge=0, le=c.KEEP_COUNT_MAX
    )  # fmt: skip
    api_tokens: SecretStr = Field(default=SecretStr(""), validation_alias=c.ENV_API_TOKENS)
    api_auth: Literal["tokens", "off"] = Field(default="tokens", validation_alias=c.ENV_API_AUTH)
    api_max_body_bytes: int = Field(
        default=c.API_MAX_BODY_BYTES_DEFAULT,
        validation_alias=c.ENV_API_MAX_BODY_BYTES,
        ge=c.API_MAX_BODY_BYTES_MIN,
        le=c.API_MAX_BODY_BYTES_MAX,
    )
    metrics_port: int = Field(default=c.METRICS_PORT, validation_alias=c.ENV_METRICS_PORT, ge=0, le=65535)
    track: Literal["stable", "canary"] = Field(default=c.TRACK_STABLE, validation_alias=c.ENV_TRACK)
    input_root: Path = Field(default=Path("./data/inputs"), validation_alias=c.ENV_INPUT_ROOT)
    path_sources: Literal["on", "off"] = Field(default="on", validation_alias=c.ENV_PATH_SOURCES)
    source_hosts: str = Field(default="", validation_alias=c.ENV_SOURCE_HOSTS)
    source_private_addresses: Literal["refuse", "allow"] = Field(
        default="refuse", validation_alias=c.ENV_SOURCE_PRIVATE_ADDRESSES
    )
    drain_seconds: float = Field(default=25.0, validation_alias=c.ENV_DRAIN_SECONDS, ge=0, le=3600)
    job_attempts: int = Field(default=3, validation_alias=c.ENV_JOB_ATTEMPTS, ge=1, le=100)
    backoff_ms: int = Field(default=1000, validation_alias=c.ENV_BACKOFF_MS, ge=0)
    # 0: the largest cap whose worst case fits the Redis budget, at most INLINE_BYTES_MAX_DEFAULT
    max_inline_bytes: int = Field(default=0, validation_alias=c.ENV_MAX_INLINE_BYTES, ge=0, le=2**30)
    redis_budget_bytes: int = Field(
        default=c.REDIS_BUDGET_BYTES_DEFAULT, validation_alias=c.ENV_REDIS_BUDGET_BYTES,
        ge=c.REDIS_BUDGET_BYTES_MIN, le=c.REDIS_BUDGET_BYTES_MAX,
    )  # fmt: skip
    max_source_bytes: int = Field(default=50 * 2**20, validation_alias=c.ENV_MAX_SOURCE_BYTES, ge=1)
    max_pixels: int = Field(default=50_000_000, validation_alias=c.ENV_MAX_PIXELS, ge=1)
    render_processes: int = Field(
        default=0, validation_alias=c.ENV_RENDER_PROCESSES, ge=0, le=c.RENDER_PROCESSES_MAX
    )  # 0: one per core this process may use, at most `concurrency`
    render_memory_bytes: int = Field(
        default=c.RENDER_MEMORY_BYTES_DEFAULT, validation_alias=c.ENV_RENDER_MEMORY_BYTES,
        ge=c.RENDER_MEMORY_BYTES_MIN, le=c.RENDER_MEMORY_BYTES_MAX,
    )  # fmt: skip
    render_timeout_seconds: float = Field(
        default=c.RENDER_TIMEOUT_SECONDS_DEFAULT, validation_alias=c.ENV_RENDER_TIMEOUT_SECONDS,
        gt=0, le=c.RENDER_TIMEOUT_SECONDS_MAX,
    )  # fmt: skip
    url_timeout_seconds: float = Field(default=10.0, validation_alias=c.ENV_URL_TIMEOUT_SECONDS, gt=0, le=300)
    log_level: LogLevel = Field(default="INFO", validation_alias=c.ENV_LOG_LEVEL)
    lock_ms: int = Field(default=30_000, validation_alias=c.ENV_LOCK_MS, ge=100)
    stalled_interval_ms: int = Field(default=30_000, validation_alias=c.ENV_STALLED_INTERVAL_MS, ge=100)
    max_stalled_count: int = Field(default=1, validation_alias=c.ENV_MAX_STALLED_COUNT, ge=0)
    run_retry_delay_ms: int = Field(default=1000, validation_alias=c.ENV_RUN_RETRY_DELAY_MS, ge=10)
    # Artifact store (issue 8); S3 credentials come from botocore's chain, never from here.
    artifact_store: Literal["filesystem", "s3"] = Field(
        default=c.STORE_FILESYSTEM, validation_alias=c.ENV_ARTIFACT_STORE
    )
    s3_bucket: str = Field(default="", validation_alias=c.ENV_S3_BUCKET, validate_default=True)
    s3_prefix: str = Field(default="", validation_alias=c.ENV_S3_PREFIX, pattern=S3_PREFIX_PATTERN)
    s3_endpoint: str = Field(default="", validation_alias=c.ENV_S3_ENDPOINT)
    s3_public_endpoint: str = Field(default="", validation_alias=c.ENV_S3_PUBLIC_ENDPOINT)
    s3_region: str = Field(default="us-east-1", validation_alias=c.ENV_S3_REGION, min_length=1)
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto", validation_alias=c.ENV_S3_ADDRESSING_STYLE
    )
    s3_url_ttl_seconds: int = Field(default=900, validation_alias=c.ENV_S3_URL_TTL_SECONDS, ge=1, le=604800)
    s3_timeout_seconds: float = Field(default=10.0, validation_alias=c.ENV_S3_TIMEOUT_SECONDS, gt=0, le=300)
    retention_days: int = Field(default=0, validation_alias=c.ENV_RETENTION_DAYS, ge=0, le=36500)
    worker_processes: int = Field(default=1, validation_alias=c.ENV_WORKER_PROCESSES, ge=1, le=64)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("has no host")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _tokens(cls, value: SecretStr) -> SecretStr:
        from worker.auth import parse_tokens

        parse_tokens(value.get_secret_value())  # ValueError names the entry, never the token
        return value

    @field_validator("source_hosts")
    @classmethod
    def _hosts(cls, value: str) -> str:
        for host in _split(value):
            if "/" in host or " " in host or host.startswith(":"):
                raise ValueError(f"{host!r} is not a host or host:port")
        return value

    @field_validator("s3_bucket")
    @classmethod
    def _bucket(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("artifact_store") == c.STORE_S3 and not re.fullmatch(S3_BUCKET_PATTERN, value):
            raise ValueError(f"{c.ENV_S3_BUCKET} must name a bucket (3-63 of a-z 0-9 . -) for the s3 store")
        return value

    @field_validator("s3_endpoint", "s3_public_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return check_endpoint_url(value, "botocore reads them from its own chain")

    @model_validator(mode="after")
    def _fits_redis(self) -> Settings:
        try:
            redis_budget.inline_cap(
                self.redis_budget_bytes, self.held_jobs, self.max_inline_bytes, _BUDGET_NAMES
            )
        except redis_budget.BudgetError as err:
            raise ValueError(f"{err.key}: {err.reason}") from None
        return self

    @property
    def inline_bytes(self) -> int:
        """The inline-source cap in force: the setting, or the largest the Redis budget allows."""
        if self.max_inline_bytes:
            return self.max_inline_bytes  # checked against the budget when the settings were made
        return redis_budget.auto_inline(self.redis_budget_bytes, self.held_jobs)

    @property
    def held_jobs(self) -> redis_budget.Held:
        """The most jobs Redis holds: the queue cap plus every retention count."""
        return redis_budget.Held(
            self.queue_max, self.keep_completed_count, self.keep_failed_count, self.keep_dlq_count
        )

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Lower-cased ``host`` or ``host:port`` entries allowed as URL sources."""
        return frozenset(h.lower() for h in _split(self.source_hosts))

    @property
    def render_pool_size(self) -> int:
        """Render processes of this consumer: the setting, or one per usable core; never over concurrency."""
        size = self.render_processes or len(os.sched_getaffinity(0))
        return max(1, min(size, self.concurrency))

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
    """Return ``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _describe(err: ValidationError) -> list[str]:
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


def load_or_exit() -> Settings:
    """Load settings from the environment, or print every bad value and exit 2."""
    try:
        return Settings()
    except ValidationError as err:
        for line in _describe(err):
            print(line, file=sys.stderr)
        raise SystemExit(EXIT_BAD_SETTINGS) from None
