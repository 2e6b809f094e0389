"""The one duration grammar of the stack config and the release tool."""

from __future__ import annotations

import re
from typing import Any

# Units largest first, each at most once, as Prometheus and Go write them: 1h30m, 90s, 500ms.
_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?")
_UNIT_SECONDS = (3600.0, 60.0, 1.0, 0.001)


def duration_seconds(text: str, *, allow_zero: bool) -> float:
    """``text`` in seconds: ``30s``, ``10m``, ``1h30m`` or ``500ms``.

    What Prometheus accepts for a rule's ``for`` and a range, and the External Secrets Operator
    for ``refreshInterval``. The caller says whether a duration of nothing (``0s``) makes sense:
    an alert's ``for`` may be 0, a rollout's step interval or analysis window may not.
    """
    match = _DURATION.fullmatch(text) if text else None
    if match is None:
        raise ValueError(f"must be a duration like 30s, 10m or 1h, got {text!r}")
    seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _UNIT_SECONDS, strict=True) if n)
    if seconds <= 0 and not allow_zero:
        raise ValueError(f"must be a duration above zero like 30s, 10m or 1h, got {text!r}")
    return seconds


def check_duration(cls: Any, v: str) -> str:
    """A field check for :func:`duration_seconds` (``0s`` allowed)."""
    duration_seconds(v, allow_zero=True)
    return v
