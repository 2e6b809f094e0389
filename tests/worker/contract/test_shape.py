"""The most a job can be (``mobius_preview_client/contract/shape.py``): derived from the schema,
never refusing a valid job, and cheap on what would cost the full validation minutes."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_validation import OUT, VALID, _mutate

from mobius_preview_client.contract import shape, validation
from tests.examples import examples

#: The largest job the schema allows: every property, 8 outputs with every option, 32 metadata keys.
LARGEST = {
    "jobId": "j-1", "source": {"url": "https://h.example/a.jpg"}, "dryRun": False, "priority": 2,
    "outputs": [{**OUT, "name": f"o{i}", "fit": "cover", "quality": 80} for i in range(8)],
    "metadata": {f"k{i}": [None, "v", 1.5, True][i % 4] for i in range(32)},
}  # fmt: skip


def scan(body: bytes, size: int) -> shape.Scanner:
    scanner = shape.Scanner()
    for at in range(0, len(body), size):
        scanner.feed(body[at : at + size])
    return scanner


def test_the_limits_come_from_the_schema_and_the_largest_job_fits_them() -> None:
    assert validation.violations(LARGEST) == []
    assert shape.limits() == shape.Limits(tokens=462, depth=3)
    for text in (
        json.dumps(LARGEST),
        json.dumps(LARGEST, indent=4),
        json.dumps(LARGEST, separators=(",", ":")),
    ):
        scanner = scan(text.encode(), 2**16)
        assert scanner.tokens <= shape.limits().tokens and scanner.depth == 0


def test_a_schema_with_an_unbounded_part_has_no_limits() -> None:
    with pytest.raises(ValueError, match="without maxItems"):
        shape._most({}, {"type": "array", "items": {"type": "string"}})
    with pytest.raises(ValueError, match="without maxProperties"):
        shape._most({}, {"type": "object", "additionalProperties": {"type": "string"}})


# Strings with escapes, quotes and brackets inside: none of them is structure.
TRICKY = st.text(alphabet='"\\/[]{},: ab\n\u00e9', max_size=30)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_valid_job_passes_in_chunks_of_any_size(data: st.DataObject) -> None:
    payload = json.loads(json.dumps(LARGEST))
    payload["metadata"] = {data.draw(TRICKY.filter(bool)) or "k": data.draw(TRICKY) for _ in range(5)}
    payload["jobId"] = "j"
    ascii_only = data.draw(st.booleans())
    body = json.dumps(payload, ensure_ascii=ascii_only, indent=data.draw(st.sampled_from([None, 1]))).encode()
    whole = scan(body, len(body))
    for size in (1, 2, 3, data.draw(st.integers(1, len(body)))):
        parts = scan(body, size)
        assert (parts.tokens, parts.depth, parts._in_string) == (whole.tokens, 0, False)
    assert whole.tokens <= shape.limits().tokens


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"metadata": {' + b'"k": 1,' * 1000 + b"}}", "more than 462 JSON tokens"),
        (b'{"outputs": [' + b"{}," * 400 + b"]}", "more than 462 JSON tokens"),
        (b'{"a": ' + b"[" * 10 + b"]" * 10 + b"}", "is nested too deeply: a job is at most 3 levels deep"),
        (b'"a" ' * 500, "more than 462 JSON tokens"),
    ],
)
def test_a_body_larger_than_any_job_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(shape.ShapeError, match=reason):
        scan(body, 7)


def test_a_14_mib_string_costs_the_scanner_little_and_is_one_token() -> None:
    for inside in (b"A" * 14 * 2**20, b"\\\\" * 7 * 2**20, b'\\"' * 7 * 2**20):
        started = time.process_time()
        scanner = scan(b'{"source": {"inline": "' + inside + b'"}}', 2**16)
        assert (scanner.tokens, scanner.depth) == (9, 0)  # { "source" : { "inline" : "…" } }
        assert time.process_time() - started < 2.0  # about 0.2 s here; a step per byte would be 10 s


def test_over_bounds_stops_at_the_bound() -> None:
    url = "https://h.example/" + "a" * 10_000_000 + "\x01"  # its pattern took 350 s at 100 k characters
    started = time.process_time()
    found = validation.violations({"source": {"url": url}, "outputs": [OUT]})
    assert [(v.path, v.message) for v in found] == [
        ("$.source.url", "is too long (10000019 chars, at most 2048)")
    ]
    many = {"source": {"path": "a"}, "outputs": [OUT], "metadata": {f"k{i}": 1 for i in range(1_200_000)}}
    assert [v.message for v in validation.violations(many)] == ["has 1200000 properties, more than 32"]
    assert time.process_time() - started < 2.0


@settings(max_examples=examples(2000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_over_bounds_refuses_only_what_the_schema_refuses(data: st.DataObject) -> None:
    payload = _mutate(data)
    if shape.over_bounds(payload):
        assert list(validation._validator().iter_errors(payload)), payload
    assert not shape.over_bounds(VALID)


def _near_bounds(data: st.DataObject) -> object:
    """A payload from ``_mutate`` with parts on either side of the schema's bounds: strings one
    char short of or over their maxLength, 8 or 9 outputs, 32 or 33 metadata keys, a key of 64 or
    65 chars, an output, source or job with one property too many."""
    payload = _mutate(data)
    if not isinstance(payload, dict):
        return payload
    edge = st.sampled_from([-1, 0, 1])
    choice = data.draw(st.sets(st.sampled_from(["url", "path", "inline", "outputs", "meta", "key", "value",
                                                "out_extra", "source_extra", "job_extra"])))  # fmt: skip
    for what in sorted(choice):
        at = data.draw(edge)
        if what in ("url", "path", "inline"):
            longest = {"url": 2048, "path": 1024, "inline": 134217728}[what]
            size = min(longest + at, 4096)  # the inline bound itself is tested below, once
            payload["source"] = {what: "A" * size}
        elif what == "outputs":
            payload["outputs"] = [{**OUT, "name": f"o{i}"} for i in range(8 + at)]
        elif what == "meta":
            payload["metadata"] = {f"k{i}": i for i in range(32 + at)}
        elif what == "key":
            payload["metadata"] = {"k" * (64 + at): 1}
        elif what == "value":
            payload["metadata"] = {"k": "v" * (1024 + at), "n": data.draw(EDGE)}
        elif what == "out_extra":
            payload["outputs"] = [{**OUT, "fit": "cover", "quality": 80, **({"x": 1} if at > 0 else {})}]
        elif what == "source_extra" and isinstance(payload.get("source"), dict):
            payload["source"] = {**payload["source"], "url": "https://h/p"} if at > 0 else payload["source"]
        elif what == "job_extra":
            payload.update({"dryRun": True, "priority": 1, "metadata": {}, "jobId": "j"})
            if at > 0:
                payload["extra"] = 1
    return payload


EDGE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2)
)


def _walked(payload: object) -> list[object]:
    return list(shape._walk(validation.schema(), validation.schema(), payload, []))


@settings(max_examples=examples(3000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fits_says_no_exactly_where_the_walk_finds_something(data: st.DataObject) -> None:
    payload = _near_bounds(data)
    assert shape.fits(payload) == (not _walked(payload)), payload


@settings(max_examples=examples(3000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_what_the_compiled_check_accepts_is_within_every_bound(data: st.DataObject) -> None:
    """``violations`` asks the compiled check first and walks the bounds only when it refuses (#34)."""
    payload = _near_bounds(data)
    if validation._accepted(payload):
        assert shape.fits(payload), payload


def test_fits_on_the_largest_job_and_one_past_each_bound() -> None:
    assert shape.fits(LARGEST) and shape.fits(VALID)
    past = [
        {**VALID, "source": {"inline": "A" * (134217728 + 4)}},
        {**VALID, "source": {"url": "h" * 2049}},
        {**LARGEST, "outputs": [*LARGEST["outputs"], OUT]},
        {**LARGEST, "metadata": {**LARGEST["metadata"], "k99": 1}},
        {**VALID, "metadata": {"k" * 65: 1}},
        {**VALID, "metadata": {"k": "v" * 1025}},
        {**VALID, "outputs": [{**OUT, "fit": "cover", "quality": 80, "extra": 1}]},
        {**LARGEST, "extra": 1},
    ]
    for payload in past:
        assert not shape.fits(payload) and _walked(payload) and shape.over_bounds(payload)
    for scalar in (None, 1, "x" * 10**6, [], {}, True):  # not a job at all: nothing over a bound
        assert shape.fits(scalar) == (not _walked(scalar))
