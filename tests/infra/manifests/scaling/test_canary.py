"""Canary split math: weight → pods per track and HPA bounds (weights 0, 1, 10, 50, 100)."""

from __future__ import annotations

import pytest

from infra.manifests.scaling.canary import Split, plan, split

# (total, weight) -> (stable, canary). Exact where the count allows; best effort below,
# never 0 canary pods for weight > 0 and never 0 stable pods for weight < 100.
TABLE = {
    (1, 0): (1, 0),
    (1, 1): (1, 1),
    (1, 10): (1, 1),
    (1, 50): (1, 1),
    (1, 100): (0, 1),
    (2, 0): (2, 0),
    (2, 1): (1, 1),
    (2, 10): (1, 1),
    (2, 50): (1, 1),
    (2, 100): (0, 2),
    (4, 0): (4, 0),
    (4, 1): (3, 1),
    (4, 10): (3, 1),
    (4, 50): (2, 2),
    (4, 100): (0, 4),
    (10, 0): (10, 0),
    (10, 1): (9, 1),
    (10, 10): (9, 1),
    (10, 50): (5, 5),
    (10, 100): (0, 10),
    (20, 0): (20, 0),
    (20, 1): (19, 1),
    (20, 10): (18, 2),
    (20, 50): (10, 10),
    (20, 100): (0, 20),
    (100, 0): (100, 0),
    (100, 1): (99, 1),
    (100, 10): (90, 10),
    (100, 50): (50, 50),
    (100, 100): (0, 100),
    (3, 90): (1, 2),
    (2, 90): (1, 1),
    (7, 25): (5, 2),
}


@pytest.mark.parametrize(("total", "weight"), sorted(TABLE))
def test_split_table(total: int, weight: int) -> None:
    assert split(total, weight) == Split(*TABLE[(total, weight)])


@pytest.mark.parametrize("weight", range(0, 101))
def test_guarantees_and_monotonic(weight: int) -> None:
    previous = Split(0, 0)
    for total in range(1, 60):
        s = split(total, weight)
        assert (s.canary > 0) == (weight > 0)
        assert (s.stable > 0) == (weight < 100)
        assert s.total in (total, total + 1)  # +1 only when one pod must serve each track
        assert s.stable >= previous.stable and s.canary >= previous.canary
        previous = s


def test_slot_share_equals_weight_when_exact() -> None:
    assert split(20, 10).canary_percent == 10.0
    assert split(10, 50).canary_percent == 50.0


def test_plan_bounds_per_track() -> None:
    p = plan(4, 20, 10)
    assert (p.bounds("stable").min, p.bounds("stable").max) == (3, 18)
    assert (p.bounds("canary").min, p.bounds("canary").max) == (1, 2)


@pytest.mark.parametrize(("total", "weight"), [(0, 10), (3, 101), (3, -1)])
def test_out_of_range_is_refused(total: int, weight: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        split(total, weight)
