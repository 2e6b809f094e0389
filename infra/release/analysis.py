"""Rollout analysis: the stack's ``rollout`` config section and the checks run between steps.

The section (``mobius-preview-worker:rollout`` in ``Pulumi.<stack>.yaml``) is
optional; its thresholds default to the stack's alerting thresholds
(``monitoring.canaryFailureMargin``, ``monitoring.dlqGrowth``) so the rollout
aborts on what the alerts would page about. Queries are PromQL with
``$window`` standing for the step interval (e.g. ``10m``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from string import Template

from pydantic import Field, ValidationError, field_validator

from infra import config_rules
from infra.alerts import FINISHED, failure_ratio
from infra.config import load_stack_file
from infra.config_rules import Model, check_range, problems_from
from infra.errors import ConfigError, PrometheusError
from infra.release.prometheus import Prometheus
from worker.constants import (
    LABEL_STATE,
    LABEL_TRACK,
    METRIC_JOB_OUTCOMES,
    METRIC_QUEUE_DEPTH,
    TRACK_CANARY,
    TRACK_STABLE,
)


def _ratio(track: str) -> str:
    return failure_ratio(f'{LABEL_TRACK}="{track}"', "$window")


def duration_seconds(text: str) -> float:
    """A window or interval: the stack config's duration grammar (``config_rules``), above zero."""
    seconds = config_rules.duration_seconds(text)
    if seconds <= 0:
        raise ValueError(f"must be a duration above zero like 30s, 10m or 1h, got {text!r}")
    return seconds


class Queries(Model):
    """PromQL per check; each must aggregate to one number."""

    canary_failure_ratio: str = _ratio(TRACK_CANARY)
    stable_failure_ratio: str = _ratio(TRACK_STABLE)
    canary_jobs: str = (
        f'sum(increase({METRIC_JOB_OUTCOMES}{{{LABEL_TRACK}="{TRACK_CANARY}",{FINISHED}}}[$window]))'
    )
    dlq_growth: str = f'max(delta({METRIC_QUEUE_DEPTH}{{{LABEL_STATE}="dlq"}}[$window]))'

    @field_validator("*")
    @classmethod
    def _template(cls, v: str) -> str:
        try:
            Template(v).substitute(window="1m")
        except (KeyError, ValueError) as exc:
            raise ValueError(f"only $window may be substituted, got {exc}") from None
        return v


class RolloutConfig(Model):
    """Defaults for ``release rollout`` and the thresholds its analysis applies."""

    steps: list[int] = Field(default_factory=lambda: [10, 25, 50, 100])
    interval: str = "10m"
    min_canary_jobs: float = 20
    failure_margin: float | None = None
    max_dlq_growth: float | None = None
    queries: Queries = Queries()

    _min_jobs = field_validator("min_canary_jobs")(check_range(0, 1e9))
    _margin = field_validator("failure_margin")(check_range(0, 1))
    _dlq = field_validator("max_dlq_growth")(check_range(0, 1e9))

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        duration_seconds(v)
        return v

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[int]) -> list[int]:
        return check_steps(v)


def check_steps(steps: list[int]) -> list[int]:
    """Canary weights, strictly increasing, each 1..100 (100 means: make the canary stable)."""
    if not steps:
        raise ValueError("must list at least one weight")
    if any(not 1 <= s <= 100 for s in steps):
        raise ValueError(f"each weight must be between 1 and 100, got {steps}")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise ValueError(f"weights must increase, got {steps}")
    return steps


def load_rollout_config(path: Path) -> RolloutConfig:
    """The stack's rollout section, thresholds filled in from its monitoring section."""
    stack = load_stack_file(path)
    try:
        config = RolloutConfig.model_validate(stack.rollout or {})
    except ValidationError as exc:
        raise ConfigError([f"rollout.{p}" for p in problems_from(exc)], str(path)) from None
    return config.model_copy(
        update={
            "failure_margin": (
                config.failure_margin
                if config.failure_margin is not None
                else stack.monitoring.canary_failure_margin
            ),
            "max_dlq_growth": (
                config.max_dlq_growth
                if config.max_dlq_growth is not None
                else float(stack.monitoring.dlq_growth)
            ),
        }
    )


@dataclass(frozen=True)
class Verdict:
    """The outcome of one analysis: healthy, or the reasons it is not, with the measured values."""

    reasons: list[str]
    values: dict[str, float | None]

    @property
    def healthy(self) -> bool:
        """No check failed."""
        return not self.reasons


def analyze(prom: Prometheus, config: RolloutConfig, window: str) -> Verdict:
    """Run every check over the last ``window``; a query that cannot be answered fails the analysis."""
    values: dict[str, float | None] = {}
    try:
        for name in ("canary_jobs", "canary_failure_ratio", "stable_failure_ratio", "dlq_growth"):
            query = Template(getattr(config.queries, name)).substitute(window=window)
            values[name] = prom.query(query)
    except PrometheusError as exc:
        return Verdict([f"analysis query failed: {exc}"], values)
    reasons: list[str] = []
    jobs = values["canary_jobs"] or 0.0
    if jobs < config.min_canary_jobs:
        reasons.append(f"canary processed {jobs:.1f} jobs in {window}, fewer than {config.min_canary_jobs:g}")
    else:
        canary = values["canary_failure_ratio"] or 0.0
        stable = values["stable_failure_ratio"] or 0.0
        margin = config.failure_margin or 0.0
        if canary > stable + margin:
            reasons.append(
                f"canary failure ratio {canary:.3f} is worse than stable {stable:.3f} + margin {margin:g}"
            )
    growth = values["dlq_growth"] or 0.0
    limit = config.max_dlq_growth or 0.0
    if growth > limit:
        reasons.append(f"DLQ grew by {growth:.1f} jobs in {window}, more than {limit:g}")
    return Verdict(reasons, values)
