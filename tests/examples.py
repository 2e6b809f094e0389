"""How many examples a property test draws: its own number, or a share of it on a rerun.

The main run draws every test's full number. ``./dev test`` reruns the interpreter-sensitive
suites on the other supported Pythons to catch what differs between interpreters (``json``,
``re``, ``int`` parsing), not to search the same input space again, so it sets
``PROPERTY_EXAMPLES_SHARE`` (a number in (0, 1]) and those runs draw that share, at least 20.
"""

from __future__ import annotations

import math
import os

ENV = "PROPERTY_EXAMPLES_SHARE"
FLOOR = 20


def share() -> float:
    """The share of each test's examples this run draws (1.0 unless ``PROPERTY_EXAMPLES_SHARE`` says)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = math.nan  # not a number: refused below, with the same message
    if not 0 < value <= 1:  # refuses nan too
        raise ValueError(f"{ENV} must be a number in (0, 1], got {raw!r}")
    return value


def examples(full: int) -> int:
    """``full`` on the main run; on a rerun its share, at least ``FLOOR`` and at most ``full``."""
    return min(full, max(FLOOR, math.ceil(full * share())))
