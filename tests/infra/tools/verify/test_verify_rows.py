"""verify's rows: every outcome of a check is a row (an unexpected answer too), and ``--json``'s shape.

The checks themselves run against real servers in tests/e2e/test_verify.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.errors import VerifyError
from infra.tools.verify import checks, cli
from infra.tools.verify.target import Row, Target


def fake_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    def passes(_: Target) -> str:
        return "fine"

    def refuses(_: Target) -> str:
        raise VerifyError("expected 2, found 1")

    def malformed(_: Target) -> str:
        return {"a": 1}["missing"]  # what a malformed answer does to a check

    monkeypatch.setattr(
        checks,
        "CHECKS",
        [("a", passes, ()), ("b", refuses, ("a",)), ("c", malformed, ()), ("d", passes, ("b", "c"))],
    )


def test_every_outcome_is_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_checks(monkeypatch)
    rows = checks.run_checks(Target("s", Path("."), "http://a", "http://p", 1.0))
    assert rows == [
        Row("a", "ok", "fine"),
        Row("b", "failed", "expected 2, found 1"),
        Row("c", "failed", "unexpected answer: KeyError: 'missing'"),
        Row("d", "not run", "not run: b and c failed"),
    ]


def test_json_document_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_checks(monkeypatch)
    rows = checks.run_checks(Target("s", Path("."), "http://a", "http://p", 1.0))
    doc = json.loads(cli.as_json("s", rows))
    assert doc == {
        "stack": "s",
        "ok": False,
        "failed": ["b", "c", "d"],
        "checks": [
            {"check": "a", "status": "ok", "detail": "fine"},
            {"check": "b", "status": "failed", "detail": "expected 2, found 1"},
            {"check": "c", "status": "failed", "detail": "unexpected answer: KeyError: 'missing'"},
            {"check": "d", "status": "not run", "detail": "not run: b and c failed"},
        ],
    }
    assert cli.table(rows).splitlines()[1] == "FAIL  b  expected 2, found 1"


def test_the_real_checks_run_in_dependency_order() -> None:
    seen: set[str] = set()
    for name, _, needs in checks.CHECKS:
        assert set(needs) <= seen, name
        seen.add(name)


def test_a_long_or_multiline_reason_stays_one_cell() -> None:
    assert checks.one_line("a\n  b\tc") == "a b c"
    assert len(checks.one_line("x" * 1000)) == 400
