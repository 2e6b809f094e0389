"""The job contract: schema examples, every violation with its JSON path, and the extra checks."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from mobius_preview_client.contract import validation
from worker.errors import InvalidJobError

REPO_ROOT = Path(__file__).resolve().parents[3]

OUT = {"name": "thumb", "format": "webp", "width": 320, "height": 320}


def paths(payload: object, cap: int | None = None) -> list[str]:
    return [v.path for v in validation.violations(payload, cap)]


@pytest.mark.parametrize("name", ["minimal", "full"])
def test_examples_are_valid(name: str) -> None:
    example = json.loads((REPO_ROOT / "schemas" / "examples" / f"{name}.json").read_text())
    assert validation.validate(example) == example


def test_schema_is_draft_2020_12_and_closed() -> None:
    schema = validation.schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["output"]["additionalProperties"] is False


def test_every_violation_is_reported_with_its_path() -> None:
    payload = {
        "jobId": "-bad",
        "source": {"path": "a.jpg", "url": "https://x/a"},
        "outputs": [
            {"name": "a", "format": "gif", "width": 0, "height": "1", "fit": "stretch"},
            {"name": "a", "format": "png", "width": 10, "height": 10, "colour": "red"},
        ],
        "dryRun": "yes",
        "priority": -1,
        "surprise": True,
    }
    assert paths(payload) == [
        "$",
        "$.dryRun",
        "$.jobId",
        "$.outputs[0].fit",
        "$.outputs[0].format",
        "$.outputs[0].height",
        "$.outputs[0].width",
        "$.outputs[1]",
        "$.outputs[1].name",
        "$.priority",
        "$.source",
    ]
    messages = {v.path: v.message for v in validation.violations(payload)}
    assert messages["$"] == "unknown properties not allowed: surprise"
    assert messages["$.outputs[1]"] == "unknown properties not allowed: colour"
    assert messages["$.outputs[1].name"] == "duplicate output name 'a'"
    assert messages["$.source"] == "must have exactly one of inline, path, url"


def test_missing_and_wrong_types() -> None:
    assert paths({}) == ["$", "$"]
    assert [v.message for v in validation.violations({})] == [
        "'source' is a required property",
        "'outputs' is a required property",
    ]
    assert paths([1, 2]) == ["$"]
    assert paths({"source": {"inline": 5}, "outputs": "thumb"}) == ["$.outputs", "$.source.inline"]


def test_outputs_bounds() -> None:
    assert paths({"source": {"path": "a"}, "outputs": []}) == ["$.outputs"]
    nine = [{**OUT, "name": f"o{i}"} for i in range(9)]
    assert paths({"source": {"path": "a"}, "outputs": nine}) == ["$.outputs"]


def test_inline_must_be_base64_and_under_the_cap() -> None:
    bad = {"source": {"inline": "!!!notbase64"}, "outputs": [OUT]}
    assert paths(bad) == ["$.source.inline"]
    big = {"source": {"inline": base64.b64encode(b"x" * 2000).decode()}, "outputs": [OUT]}
    assert paths(big, cap=4000) == []
    found = validation.violations(big, 1000)
    assert [(v.path, v.message) for v in found] == [
        ("$.source.inline", "decodes to 2000 bytes, over the 1000-byte cap")
    ]


def test_path_traversal_and_url_scheme() -> None:
    assert paths({"source": {"path": "../etc/passwd"}, "outputs": [OUT]}) == ["$.source.path"]
    assert paths({"source": {"path": "/etc/passwd"}, "outputs": [OUT]}) == ["$.source.path"]
    assert paths({"source": {"url": "ftp://host/a"}, "outputs": [OUT]}) == ["$.source.url"]
    assert paths({"source": {"url": "https://assets.example/a.pdf"}, "outputs": [OUT]}) == []


def test_metadata_is_bounded() -> None:
    many = {f"k{i}": i for i in range(33)}
    assert paths({"source": {"path": "a"}, "outputs": [OUT], "metadata": many}) == ["$.metadata"]
    nested = {"a": {"b": 1}}
    assert paths({"source": {"path": "a"}, "outputs": [OUT], "metadata": nested}) == ["$.metadata.a"]
    long_value = {"a": "x" * 1025}
    assert paths({"source": {"path": "a"}, "outputs": [OUT], "metadata": long_value}) == ["$.metadata.a"]


def test_metadata_as_stored_is_bounded_so_a_job_fits_the_redis_budget() -> None:
    from worker import constants as c

    ascii_max = {f"{i:064d}": "x" * 1024 for i in range(32)}  # the schema's largest, in plain ASCII
    assert paths({"source": {"path": "a"}, "outputs": [OUT], "metadata": ascii_max}) == []
    escaped = {f"k{i}": "\u00e9" * 1024 for i in range(32)}  # stored as \u00e9: six bytes a character
    found = validation.violations({"source": {"path": "a"}, "outputs": [OUT], "metadata": escaped})
    assert [(v.path, v.message) for v in found] == [
        ("$.metadata", f"is {len(json.dumps(escaped, separators=(',', ':')))} bytes as stored JSON, "
                       f"over the {c.METADATA_MAX_BYTES}-byte limit"),
    ]  # fmt: skip


def test_validate_raises_with_all_violations() -> None:
    with pytest.raises(InvalidJobError) as info:
        validation.validate({"source": {}, "outputs": [OUT, OUT]})
    assert [str(v) for v in info.value.violations] == [
        "$.outputs[1].name: duplicate output name 'thumb'",
        "$.source: must have exactly one of inline, path, url",
    ]
    assert str(info.value).startswith("invalid job: $.outputs[1].name")


def test_inline_with_bad_padding() -> None:
    found = validation.violations({"source": {"inline": "abcde"}, "outputs": [OUT]})
    assert [(v.path, v.message) for v in found] == [("$.source.inline", "is not valid base64")]


# --- The compiled schema (fastjsonschema, for speed) and jsonschema (the authority) agree (#18) ---

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.examples import examples  # noqa: E402

EXAMPLES = REPO_ROOT / "schemas" / "examples"
VALID = {"jobId": "r1", "source": {"inline": "iVBORw0KGgo="}, "outputs": [dict(OUT)]}
# Values that sit on the edges of the schema's rules: integer-like floats, bools, trailing
# newlines, reserved and all-digit ids, over-long strings, astral characters, wrong containers.
EDGE_VALUES = st.one_of(
    st.sampled_from([
        0, 1, -1, 64, 64.0, 64.5, 4096, 4097, 2**21, 2**21 + 1, 2**70, True, False, None, "", "a", "abc\n",
        "wait", "123", "0", "meta", "job-1", "x" * 129, "webp", "png", "jpeg", "gif", "cover", "contain",
        "http://a.example/x", "ftp://a/x", "/abs", "rel/p", "uploads/../x", "iVBORw0KGgo=", "iVBO\n",
        "\U0001f600" * 3, [], {}, [1], {"a": 1}, [dict(OUT)], {"inline": "AA=="}, {"url": "https://h/p"},
    ]),
    st.integers(), st.floats(allow_nan=False), st.text(max_size=12), st.booleans(),
)  # fmt: skip
KEYS = st.sampled_from([
    "jobId", "source", "outputs", "dryRun", "priority", "metadata", "extra", "inline", "url", "path",
    "name", "format", "width", "height", "fit", "quality",
])  # fmt: skip


def _mutate(data: st.DataObject) -> object:
    """A valid payload with a few keys, at any depth, set to edge values or removed."""
    payload = json.loads(json.dumps(VALID))
    for _ in range(data.draw(st.integers(1, 4))):
        targets = [payload, payload["source"] if isinstance(payload.get("source"), dict) else payload]
        outs = payload.get("outputs")
        if isinstance(outs, list) and outs and isinstance(outs[0], dict):
            targets.append(outs[0])
        target = data.draw(st.sampled_from(targets))
        key = data.draw(KEYS)
        if data.draw(st.booleans()) and key in target:
            del target[key]
        else:
            # A copy: EDGE_VALUES' lists and dicts are shared by every example, and a later step may
            # mutate what it placed (outputs[0]); shared state made Hypothesis report a flaky strategy.
            target[key] = copy.deepcopy(data.draw(EDGE_VALUES))
    return payload


def _both(payload: object) -> tuple[bool, bool]:
    return validation._accepted(payload), not list(validation._validator().iter_errors(payload))


@settings(max_examples=examples(3000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_compiled_schema_accepts_exactly_what_jsonschema_accepts(data: st.DataObject) -> None:
    fast, slow = _both(_mutate(data))
    assert fast == slow


def test_the_compiled_schema_agrees_on_every_example_and_counter_example() -> None:
    files = sorted(EXAMPLES.glob("*.json")) + sorted((EXAMPLES / "invalid").glob("*.json"))
    assert len(files) >= 6
    for path in files:
        try:
            payload = json.loads(path.read_text())
        except ValueError:
            continue  # the truncated example is not JSON: parse() refuses it before any schema
        fast, slow = _both(payload)
        assert fast == slow, path.name
        assert slow == (path.parent == EXAMPLES), path.name


def test_the_compiled_schema_builds_no_error_name_for_a_valid_item() -> None:
    """The compiled check is fastjsonschema's code less the error-message name it built for each
    array item (#34): the pattern still finds that code (so a fastjsonschema upgrade that changes it
    fails here rather than quietly costing 2.8 µs a job), and a bad output is still refused."""
    import fastjsonschema

    plain = validation._without("contentEncoding", validation.schema())
    code = fastjsonschema.compile_to_code(plain, use_default=False, detailed_exceptions=False)
    assert len(validation._ITEM_NAME.findall(code)) == 1  # the outputs array: the schema's only one
    good = json.loads((EXAMPLES / "full.json").read_text())
    assert validation._accepted(good)
    assert not validation._accepted({**good, "outputs": [*good["outputs"], {"name": "x", "format": "gif"}]})


def test_a_payload_the_compiled_schema_refuses_still_lists_every_violation() -> None:
    bad = {"jobId": "wait", "source": {"inline": "AA==", "url": "https://h/p"}, "outputs": [{"name": "?"}]}
    assert not validation._accepted(bad)
    assert len(validation.violations(bad)) >= 4  # the id, the two sources, the output's name and fields


@settings(max_examples=examples(3000), deadline=None)
@given(st.one_of(
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
    st.from_regex(r"\A[A-Za-z0-9+/]{0,12}={0,2}\Z"),
))  # fmt: skip
def test_the_base64_size_is_what_decoding_gives_and_none_exactly_when_decoding_fails(text: str) -> None:
    """The decoder's verdict on every Python, except that padding after a complete group, which only
    3.11 and 3.12 decode, is refused on all."""
    import binascii

    try:
        decoded: int | None = len(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        decoded = None
    if len(text.rstrip("=")) % 4 == 0 and text.endswith("="):
        decoded = None
    assert validation.base64_size(text) == decoded


@settings(max_examples=examples(3000), deadline=None)
@given(st.one_of(
    st.text(alphabet="AZaz09+/=\n\r é\x00-_", max_size=12),
    st.from_regex(r"\A[A-Za-z0-9+/]{0,12}={0,3}\n?\Z"),
    st.text(max_size=8),
))  # fmt: skip
def test_base64_text_says_what_the_schemas_inline_pattern_says(text: str) -> None:
    """The compiled check leaves the inline pattern to ``base64_text`` (#34): the same verdict as
    the pattern itself, as Python (and fastjsonschema before) reads it."""
    assert validation.base64_text(text) == bool(re.search(validation.INLINE_PATTERN, text))


def test_the_schema_still_declares_the_pattern_base64_text_checks() -> None:
    inline = validation.schema()["properties"]["source"]["properties"]["inline"]
    assert inline["pattern"] == validation.INLINE_PATTERN
    assert validation._accepted(VALID)
    assert not validation._accepted({**VALID, "source": {"inline": "iVBO-w0K"}})
    assert not validation._accepted({**VALID, "source": {"inline": "iVBORw0KGgo=\n"}})
    assert [(v.path, v.message) for v in validation.violations({**VALID, "source": {"inline": "AA=A"}})] == [
        ("$.source.inline", "does not match the required pattern (4 chars)")
    ]


def test_padding_after_a_complete_group_is_refused_on_every_python() -> None:
    assert [validation.base64_size(t) for t in ("AAAA", "AAAA=", "AAAA==", "AA==", "AAA=", "=")] == [
        3, None, None, 1, 2, None,
    ]  # fmt: skip


# --- The JSON gate's decoding: the scanner alone when the document fills the text (#34) ---

JSON_PIECES = st.sampled_from([
    "{", "}", "[", "]", ",", ":", '"a"', '"\\ud800"', '"\\u00e9"', '"é"', "1", "-0", "1.5", "1e400", "-1e999",
    "NaN", "Infinity", "-Infinity", "true", "null", " ", "\n", "\t", "x", '"', "\\", "1" * 5000, "",
])  # fmt: skip


def _decoded_or_error(decode: object, text: str) -> tuple[str, object]:
    try:
        return "value", decode(text)  # type: ignore[operator]
    except (ValueError, RecursionError) as err:
        return type(err).__name__, str(err)


@settings(max_examples=examples(3000), deadline=None)
@given(pieces=st.lists(JSON_PIECES, max_size=12), text=st.text(max_size=8))
def test_the_gate_decodes_and_refuses_exactly_as_json_decode(pieces: list[str], text: str) -> None:
    """``validation._decoded`` skips ``JSONDecoder.decode``'s whitespace matches for a document that
    fills the text; every value, refusal and message (the position in it included) stays decode's."""
    for candidate in ("".join(pieces), text, "".join(pieces) + text, text + "".join(pieces)):
        expected = _decoded_or_error(validation._DECODER.decode, candidate)
        assert _decoded_or_error(validation._decoded, candidate) == expected, candidate


@pytest.mark.parametrize(
    "text",
    ['{"a":1}', ' {"a":1}', '{"a":1} ', '{"a":1}x', '{"a":1}{}', "", " ", "[1,", "[1,]", '{"a":1e400}',
     "[NaN]", '"\\ud800"', "[" * 100_000 + "]" * 100_000, '{"a": [1, 2.5, {"b": null}]}\n'],
)  # fmt: skip
def test_the_gate_reads_edge_texts_as_json_decode(text: str) -> None:
    expected = _decoded_or_error(validation._DECODER.decode, text)
    assert _decoded_or_error(validation._decoded, text) == expected
    try:
        parsed: object = validation.parse(text)
    except InvalidJobError as err:
        assert expected[0] != "value" or "\\ud800" in text, err
    else:
        assert expected == ("value", parsed)
