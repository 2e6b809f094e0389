"""The stack config's ``slos`` section: the availability and latency SLOs, each a target over a window.

Defaults and bounds live here only. A section left out (``slos: {}``, or no ``slos`` key) declares
no SLO of that kind; the policy pack refuses a production stack without both
(``policy/rules.py`` ``check_slos``). The rules generated from them are in
``infra/manifests/observability/slo_rules.py``; what they mean is in ``docs/slo.md``.
"""

from __future__ import annotations

from typing import Final

from pydantic import field_validator

from infra.config.base_model import Model, check_range
from worker.constants import JOB_TURNAROUND_BUCKETS

#: The SLO windows the burn-rate factors are defined for (the SRE Workbook's and Sloth's periods).
SLO_WINDOWS: Final = ("28d", "30d")
#: Above 1 - 1/14.4 the fastest burn could never page (14.4 x the budget would exceed every job);
#: 0.95 keeps room. Above 0.9999 a budget is a handful of jobs a month: noise, not a signal.
TARGET_MIN: Final = 0.95
TARGET_MAX: Final = 0.9999


def _check_window(cls: type, v: str) -> str:
    if v not in SLO_WINDOWS:
        raise ValueError(f"must be one of {', '.join(SLO_WINDOWS)}, got {v[:20]!r}")
    return v


class AvailabilitySlo(Model):
    """Share of jobs that end completed rather than failed or dead-lettered, invalid input left out."""

    target: float = 0.995
    window: str = "30d"

    _target = field_validator("target")(check_range(TARGET_MIN, TARGET_MAX))
    _window = field_validator("window")(_check_window)


class LatencySlo(Model):
    """Share of jobs that end well within ``threshold_seconds`` of their enqueue."""

    target: float = 0.99
    window: str = "30d"
    # One of the worker's turnaround buckets (worker.constants.JOB_TURNAROUND_BUCKETS): the SLI
    # reads the bucket's count, so any other value could only be interpolated.
    threshold_seconds: float = 60.0

    _target = field_validator("target")(check_range(TARGET_MIN, TARGET_MAX))
    _window = field_validator("window")(_check_window)

    @field_validator("threshold_seconds")
    @classmethod
    def _threshold(cls, v: float) -> float:
        if v not in JOB_TURNAROUND_BUCKETS:
            allowed = ", ".join(f"{b:g}" for b in JOB_TURNAROUND_BUCKETS)
            raise ValueError(f"must be one of the turnaround buckets ({allowed}), got {v!r}")
        return v


class Slos(Model):
    """The stack's SLOs; a kind left out is not declared (no SLO rules, no burn-rate alerts for it)."""

    availability: AvailabilitySlo | None = None
    latency: LatencySlo | None = None
