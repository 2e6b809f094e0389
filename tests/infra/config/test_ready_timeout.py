"""``readyTimeout``: how long ``pulumi up`` waits for a Deployment to be Available, bounded.

That the engine really fails a Deployment whose pods never become Ready within it, naming their
reason, is proved on the real node (``tests/e2e/test_real_pods.py``).
"""

from __future__ import annotations

import pytest
from test_model import minimal, problems

from infra.config.model import parse_config


def test_the_default_is_the_engines_own_ten_minutes() -> None:
    assert parse_config(minimal()).ready_timeout_seconds == 600


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("2m30s", 150), ("1h", 3600)])
def test_a_duration_in_bounds_is_kept(text: str, seconds: int) -> None:
    assert parse_config(minimal(readyTimeout=text)).ready_timeout_seconds == seconds


@pytest.mark.parametrize("text", ["29s", "1h1s", "0s", "10", "ten minutes", ""])
def test_a_bad_timeout_is_refused_naming_the_key(text: str) -> None:
    found = problems(minimal(readyTimeout=text))
    assert len(found) == 1 and found[0].startswith("readyTimeout: must be a duration"), found
