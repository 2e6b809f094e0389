"""Every setting a stack passes to the worker, declared once: env var, type, default, bounds, help.

Both halves build on :class:`Tunables`:

- the worker's :class:`worker.settings.Settings` inherits it and reads each field from its env var;
- the stack config embeds it as its ``worker`` section (camelCase keys: ``worker: {queueMax: 5000}``),
  and :func:`to_env` turns it into the ConfigMap's env by looping over the fields.

So a value the stack accepts is one the worker accepts: the same field checks it in both places.
This module imports only pydantic and :mod:`worker.constants`, so the Pulumi program can import it
without the worker's runtime. Settings the stack derives rather than passes through (the Redis
budget from a quantity, the render processes from the pod's limits, the source hosts, the store's
bucket and endpoints) and the secrets are not here; see ``infra/manifests/env.py``.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from mobius_preview_client import names
from worker import constants as c


def tunable(env: str, default: Any, help: str, **rules: Any) -> Any:
    """A field read from ``env``: its default, a one-line ``help`` and pydantic's bounds (``ge``, …)."""
    return Field(default, description=help, json_schema_extra={"env": env}, **rules)


def check_endpoint_url(value: str, credentials_from: str) -> str:
    """An S3 endpoint: empty, or an http(s) URL with a host, no path and no credentials.

    Shared by the worker's settings and the stack's ``artifacts`` (``infra/config/store.py``);
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


class Tunables(BaseModel):
    """The worker's tunables; the stack config's ``worker`` section."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    # The queue and its jobs.
    queue_name: str = tunable(
        c.ENV_QUEUE_NAME, names.QUEUE_NAME_DEFAULT, "BullMQ queue name (its DLQ is `<name>-dlq`)",
        pattern=c.QUEUE_NAME_PATTERN,
    )  # fmt: skip
    concurrency: int = tunable(c.ENV_CONCURRENCY, 2, "jobs one worker process runs at once", ge=1, le=256)
    # The client (mobius_preview_client) checks these three with the same defaults and bounds.
    queue_max: int = tunable(
        c.ENV_QUEUE_MAX,
        names.QUEUE_MAX_DEFAULT,
        "unfinished jobs (waiting, delayed or active) above which the API answers 429",
        ge=1,
        le=names.QUEUE_MAX_MAX,
    )
    job_attempts: int = tunable(
        c.ENV_JOB_ATTEMPTS, names.JOB_ATTEMPTS_DEFAULT, "attempts per job before the DLQ",
        ge=1, le=names.JOB_ATTEMPTS_MAX,
    )  # fmt: skip
    backoff_ms: int = tunable(
        c.ENV_BACKOFF_MS, names.BACKOFF_MS_DEFAULT, "first retry delay (exponential backoff)",
        ge=0, le=names.BACKOFF_MS_MAX,
    )  # fmt: skip
    drain_seconds: float = tunable(
        c.ENV_DRAIN_SECONDS, 25.0, "on SIGTERM, how long running jobs may finish", ge=0, le=3600
    )
    lock_ms: int = tunable(
        c.ENV_LOCK_MS, 30_000, "job lock duration (BullMQ lockDuration)", ge=100, le=3_600_000
    )
    stalled_interval_ms: int = tunable(
        c.ENV_STALLED_INTERVAL_MS, 30_000, "how often stalled jobs are looked for", ge=100, le=3_600_000
    )
    max_stalled_count: int = tunable(
        c.ENV_MAX_STALLED_COUNT, 1, "stalls before a job fails (BullMQ maxStalledCount)", ge=0, le=100
    )
    run_retry_delay_ms: int = tunable(
        c.ENV_RUN_RETRY_DELAY_MS, 1000, "pause before fetching again after a Redis error", ge=10, le=600_000
    )

    # How long Redis keeps finished jobs: a job goes when either its age or the count is exceeded.
    keep_completed_seconds: int = tunable(
        c.ENV_KEEP_COMPLETED_SECONDS, 24 * 3600, "completed jobs kept this long", ge=1, le=c.KEEP_SECONDS_MAX
    )
    keep_completed_count: int = tunable(
        c.ENV_KEEP_COMPLETED_COUNT, 1000, "completed jobs kept at most", ge=0, le=c.KEEP_COUNT_MAX
    )
    keep_failed_seconds: int = tunable(
        c.ENV_KEEP_FAILED_SECONDS, 7 * 24 * 3600, "failed jobs kept this long", ge=1, le=c.KEEP_SECONDS_MAX
    )
    keep_failed_count: int = tunable(
        c.ENV_KEEP_FAILED_COUNT, 5000, "failed jobs kept at most", ge=0, le=c.KEEP_COUNT_MAX
    )
    keep_dlq_seconds: int = tunable(
        c.ENV_KEEP_DLQ_SECONDS,
        30 * 24 * 3600,
        "dead-lettered jobs kept this long",
        ge=1,
        le=c.KEEP_SECONDS_MAX,
    )
    keep_dlq_count: int = tunable(
        c.ENV_KEEP_DLQ_COUNT, 1000, "dead-lettered jobs kept at most", ge=0, le=c.KEEP_COUNT_MAX
    )

    # What one job may cost.
    max_inline_bytes: int = tunable(
        c.ENV_MAX_INLINE_BYTES,
        0,
        "inline source cap; 0: the largest the Redis budget allows",
        ge=0,
        le=names.INLINE_BYTES_MAX,
    )
    max_source_bytes: int = tunable(
        c.ENV_MAX_SOURCE_BYTES, 50 * 2**20, "largest path or URL source, in bytes", ge=1, le=2**32
    )
    max_pixels: int = tunable(c.ENV_MAX_PIXELS, 50_000_000, "largest source, in pixels", ge=1, le=2**31)
    render_timeout_seconds: float = tunable(
        c.ENV_RENDER_TIMEOUT_SECONDS, c.RENDER_TIMEOUT_SECONDS_DEFAULT, "one render's time limit",
        gt=0, le=c.RENDER_TIMEOUT_SECONDS_MAX,
    )  # fmt: skip
    url_timeout_seconds: float = tunable(
        c.ENV_URL_TIMEOUT_SECONDS, 10.0, "total deadline of one URL fetch", gt=0, le=300
    )
    source_private_addresses: Literal["refuse", "allow"] = tunable(
        c.ENV_SOURCE_PRIVATE_ADDRESSES, "refuse", "fetch URL sources that resolve to private addresses"
    )
    api_max_body_bytes: int = tunable(
        c.ENV_API_MAX_BODY_BYTES, c.API_MAX_BODY_BYTES_DEFAULT, "job API request bodies above this get 413",
        ge=c.API_MAX_BODY_BYTES_MIN, le=c.API_MAX_BODY_BYTES_MAX,
    )  # fmt: skip
    api_body_budget_bytes: int = tunable(
        c.ENV_API_BODY_BUDGET_BYTES, 0,
        "request body bytes one job API process holds at once, beyond which it answers 503; "
        "0: one body of `apiMaxBodyBytes`",
        ge=0, le=c.API_BODY_BUDGET_BYTES_MAX,
    )  # fmt: skip
    api_header_timeout_seconds: float = tunable(
        c.ENV_API_HEADER_TIMEOUT_SECONDS, 10.0,
        "a job API request's head must arrive within this (from the connection, or the last answer)",
        gt=0, le=300,
    )  # fmt: skip
    api_body_timeout_seconds: float = tunable(
        c.ENV_API_BODY_TIMEOUT_SECONDS, 30.0, "a job API request's body must arrive within this; else 408",
        gt=0, le=3600,
    )  # fmt: skip
    api_keep_alive_seconds: int = tunable(
        c.ENV_API_KEEP_ALIVE_SECONDS, 5, "an idle job API connection is closed after this", ge=1, le=3600
    )
    api_max_connections: int = tunable(
        c.ENV_API_MAX_CONNECTIONS, 256,
        "open connections per job API process; beyond, an idle one is closed, or the new one gets 503",
        ge=2, le=65_536,
    )  # fmt: skip
    api_health_max_age_seconds: float = tunable(
        c.ENV_API_HEALTH_MAX_AGE_SECONDS, 2.0,
        "the job API's health answers from a Redis check at most this old (checked every quarter "
        "of it), else 503",
        ge=0.2, le=60,
    )  # fmt: skip

    # The artifact store's behaviour (its bucket and endpoints are the stack's `artifacts`).
    s3_prefix: str = tunable(
        c.ENV_S3_PREFIX, "", "S3 key prefix, e.g. `previews/`", pattern=c.S3_PREFIX_PATTERN
    )
    s3_region: str = tunable(c.ENV_S3_REGION, "us-east-1", "S3 signing region", pattern=c.S3_REGION_PATTERN)
    s3_addressing_style: Literal["auto", "path", "virtual"] = tunable(
        c.ENV_S3_ADDRESSING_STYLE, "auto", "`path` for MinIO and most self-hosted services"
    )
    s3_url_ttl_seconds: int = tunable(
        c.ENV_S3_URL_TTL_SECONDS, 900, "lifetime of presigned URLs", ge=1, le=604_800
    )
    s3_timeout_seconds: float = tunable(
        c.ENV_S3_TIMEOUT_SECONDS, 10.0, "connect and read timeout per S3 request", gt=0, le=300
    )
    retention_days: int = tunable(
        c.ENV_RETENTION_DAYS, 0, "artifact sets older than this are swept; 0 keeps them", ge=0, le=36_500
    )

    metrics_host: str = tunable(
        c.ENV_METRICS_HOST, c.METRICS_HOST_DEFAULT,
        "address the worker's health and metrics server binds (`127.0.0.1`: this host only)",
        pattern=c.METRICS_HOST_PATTERN,
    )  # fmt: skip

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = tunable(
        c.ENV_LOG_LEVEL, "INFO", "JSON log lines at this level and above"
    )

    @model_validator(mode="after")
    def _body_fits_budget(self) -> Tunables:
        if 0 < self.api_body_budget_bytes < self.api_max_body_bytes:
            raise ValueError(
                f"{to_camel('api_body_budget_bytes')} ({c.ENV_API_BODY_BUDGET_BYTES}) "
                f"{self.api_body_budget_bytes} is under {to_camel('api_max_body_bytes')} "
                f"({c.ENV_API_MAX_BODY_BYTES}) {self.api_max_body_bytes}: "
                "a body that large could never be read"
            )
        return self

    @property
    def api_bodies_bytes(self) -> int:
        """The body budget in force: the setting, or one body of ``api_max_body_bytes``."""
        return self.api_body_budget_bytes or self.api_max_body_bytes


def env_name(field: str) -> str:
    """The env var a tunable is read from."""
    extra = Tunables.model_fields[field].json_schema_extra
    assert isinstance(extra, dict)
    return str(extra["env"])


def to_env(tunables: Tunables) -> dict[str, str]:
    """Every tunable as the env var the worker reads it from, its value as the worker parses it."""
    return {env_name(name): str(getattr(tunables, name)) for name in Tunables.model_fields}


def table() -> str:
    """The tunables as a Markdown table (``docs/settings.md`` holds it; a test keeps it current)."""
    rows = ["| Stack key (`worker.`) | Env var | Default | Bounds | What |", "|---|---|---|---|---|"]
    for name, field in Tunables.model_fields.items():
        bounds = []
        for rule in field.metadata:
            for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("pattern", "matches")):
                if getattr(rule, attr, None) is not None:
                    bounds.append(f"{sign} `{getattr(rule, attr)}`")
        annotation = field.annotation
        choices = getattr(annotation, "__args__", None)
        if choices:
            bounds.append(" or ".join(f"`{x}`" for x in choices))
        cells = [f"`{to_camel(name)}`", f"`{env_name(name)}`", f"`{field.default}`", ", ".join(bounds)]
        cells.append(str(field.description))
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


DOC_START, DOC_END = "<!-- tunables:start -->", "<!-- tunables:end -->"


DOC_PATH = "docs/settings.md"


def render_doc(doc: str) -> str:
    """``doc`` with :func:`table` between its markers."""
    head, _, rest = doc.partition(DOC_START + "\n")
    _, _, tail = rest.partition(DOC_END)
    return f"{head}{DOC_START}\n{table()}{DOC_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """``python -m worker.tunables --write|--check [PATH]``: regenerate, or verify, the settings table.

    ``--check`` exits 1 with the lines that differ when the doc is stale; no option prints the
    usage and exits 2 (the doc is only ever written when asked).
    """
    import argparse
    import difflib
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(
        prog="python -m worker.tunables", description=f"The tunables table of {DOC_PATH}."
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the table between the doc's markers")
    mode.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    parser.add_argument("path", nargs="?", default=DOC_PATH, help=f"the doc (default {DOC_PATH})")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: give --write or --check", file=sys.stderr)
        return 2
    doc = Path(args.path).read_text(encoding="utf-8")
    wanted = render_doc(doc)
    if args.write:
        Path(args.path).write_text(wanted, encoding="utf-8")
        return 0
    if doc == wanted:
        return 0
    diff = difflib.unified_diff(
        doc.splitlines(keepends=True), wanted.splitlines(keepends=True), args.path, f"{args.path} (generated)"
    )
    sys.stderr.write(f"{args.path} is stale: run `python -m worker.tunables --write`\n{''.join(diff)}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
