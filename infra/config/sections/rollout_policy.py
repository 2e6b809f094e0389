"""The stack's ``rollout`` section: the release tool's progressive rollout and its analysis.

The section (``mobius-preview-worker:rollout`` in ``Pulumi.<stack>.yaml``) is optional; its
thresholds default to the stack's alerting thresholds (``monitoring.canaryFailureMargin``,
``monitoring.dlqGrowth``, filled in by ``infra.tools.release.analysis.load_rollout_config``) so a rollout
aborts on what the alerts would page about. Queries are PromQL with ``$window`` standing for the
step interval (e.g. ``10m``). Validated with the rest of the stack config, so ``pulumi preview``
refuses a bad section as the release tool does.
"""

from __future__ import annotations

import itertools
from string import Template

from pydantic import Field, field_validator

from infra.config.base_model import Model, check_range
from infra.config.fields.durations import duration_seconds
from infra.promql import FINISHED, availability_ratio
from worker.constants import (
    LABEL_STATE,
    LABEL_TRACK,
    METRIC_JOB_OUTCOMES,
    METRIC_QUEUE_DEPTH,
    TRACK_CANARY,
    TRACK_STABLE,
)


def _ratio(track: str) -> str:
    # The availability SLI of the SLO rules and the canary alert (slo:sli_error_by_track:ratio_rate5m's
    # expression) over the step interval: "the canary is worse" means the same in all three.
    return availability_ratio(f'{LABEL_TRACK}="{track}"', "$window")


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
        duration_seconds(v, allow_zero=False)  # a step interval of nothing would not wait at all
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
