from __future__ import annotations

import pytest

from tests import examples


def test_the_main_run_draws_every_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(examples.ENV, raising=False)
    assert examples.examples(3000) == 3000


def test_a_rerun_draws_its_share_with_a_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(examples.ENV, "0.1")
    assert examples.examples(3000) == 300
    assert examples.examples(150) == 20  # the floor
    assert examples.examples(6) == 6  # never more than the test's own number


@pytest.mark.parametrize("raw", ["0", "-0.5", "1.5", "nan", "inf", "a tenth"])
def test_a_share_outside_0_to_1_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(examples.ENV, raw)
    with pytest.raises(ValueError, match=examples.ENV):
        examples.examples(3000)
