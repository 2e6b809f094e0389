"""Rollout analysis: the stack's ``rollout`` config section and the checks run between steps.

The section (``mobius-preview-worker:rollout`` in ``Pulumi.<stack>.yaml``) is
optional; its thresholds default to the stack's alerting thresholds
(``monitoring.canaryFailureMargin``, ``monitoring.dlqGrowth``) so the rollout
aborts on what the alerts would page about. Queries are PromQL with
``$window`` standing for the step interval (e.g. ``10m``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

from infra.config.model import load_stack_file
from infra.config.sections.rollout_policy import RolloutConfig, check_steps
from infra.errors import PrometheusError
from infra.tools.release.promapi import Prometheus

__all__ = ["RolloutConfig", "Verdict", "analyze", "check_steps", "load_rollout_config"]


def load_rollout_config(path: Path) -> RolloutConfig:
    """The stack's rollout section, thresholds filled in from its monitoring section."""
    stack = load_stack_file(path)  # validates the section, naming `rollout.<key>`
    config = stack.rollout
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
