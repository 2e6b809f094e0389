"""The job contract: JSON Schema 2020-12 from ``schemas/`` plus the checks a schema cannot express.

One of those the schema still declares, as ``uniqueItemProperties`` (ajv-keywords' name, which
JSON Schema validators ignore): the output properties no two outputs may share; it is enforced
here and by the npm package's validator.

Used by the client and the API at enqueue and again by the worker before it renders, so a job
written straight into Redis by any producer is held to the same contract.
"""

from __future__ import annotations

import functools
import json
import math
import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from mobius_preview_client import names as c
from mobius_preview_client.contract import jobid, shape
from mobius_preview_client.errors import InvalidJobError, Violation

PACKAGE = Path(__file__).resolve().parents[1]
#: The schema's pattern for an inline source, which :func:`base64_text` checks in its place.
INLINE_PATTERN = "^[A-Za-z0-9+/]*={0,2}(?!\\n)$"
#: RFC 4648's base64 alphabet: an inline source's characters besides up to two ``=``.
_BASE64_ALPHABET = (string.ascii_letters + string.digits + "+/").encode("ascii")
#: A JSON escape of a UTF-16 surrogate (``\\ud800``): a lone one decodes to a string no UTF-8 holds.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: The error-message name fastjsonschema's code builds for each array item before checking it.
_ITEM_NAME = re.compile(r'\(name_prefix or "data"\) \+ "[^"]*\[\{\w+\}\]"\.format\(\*\*locals\(\)\)')


def schema_path() -> Path:
    """``schemas/preview-job.schema.json``: the wheel ships it in the package (``SCHEMA_PACKAGED``,
    put there at build time by ``clients/python/pyproject.toml``); in the repository it is read
    where it is declared."""
    packaged = PACKAGE / c.SCHEMA_PACKAGED
    return packaged if packaged.is_file() else PACKAGE.parent / c.SCHEMA_FILE


@functools.cache
def schema() -> dict[str, Any]:
    """The job schema, loaded once from :func:`schema_path`."""
    loaded: dict[str, Any] = json.loads(schema_path().read_text())
    Draft202012Validator.check_schema(loaded)
    return loaded


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


@functools.cache
def _compiled() -> Callable[[Any], Any]:
    """The same schema compiled to Python code (fastjsonschema): a yes or no in microseconds.

    It answers whether a payload is valid; jsonschema, the authority, lists the violations of
    one that is not. ``tests/worker/contract/test_validation.py`` checks that the two always agree.
    """
    # contentEncoding is an annotation in draft 2020-12, but fastjsonschema (draft 7) would decode
    # it; the base64 check is _extra_checks' alone, as for jsonschema.
    plain = _without("contentEncoding", schema())
    # The inline source's pattern is asked of base64_text instead (see _accepted): a regex over
    # megabytes of base64 held the event loop four times as long, and ran twice (#34).
    inline = plain["properties"]["source"]["properties"]["inline"]
    if inline.pop("pattern") != INLINE_PATTERN:
        raise AssertionError("the schema's inline pattern changed: change base64_text with it")
    code = fastjsonschema.compile_to_code(plain, use_default=False, detailed_exceptions=False)
    # Only a yes or no is asked of it, so the name each array item's check would carry into an
    # error message is not built: a ``format(**locals())`` per output, 2.8 of its 6.4 µs for a job
    # with one output (#34). The rest of the code is fastjsonschema's, unchanged.
    code = _ITEM_NAME.sub("name_prefix", code)
    namespace: dict[str, Any] = {}
    exec(compile(code, "<fastjsonschema>", "exec"), namespace)  # as fastjsonschema.compile does
    root = re.search(r"^def (\w+)\(", code, re.MULTILINE)
    assert root is not None
    check: Callable[[Any], Any] = namespace[root[1]]
    return check


def _without(keyword: str, node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without(keyword, v) for k, v in node.items() if k != keyword}
    if isinstance(node, list):
        return [_without(keyword, v) for v in node]
    return node


def _accepted(payload: Any) -> bool:
    """Whether the schema accepts ``payload``: the compiled check, then the inline pattern."""
    try:
        _compiled()(payload)
    except Exception:  # a violation, or input the generated code cannot handle: jsonschema decides
        return False
    inline = payload["source"].get("inline")  # accepted: a dict with a source object
    return inline is None or base64_text(inline)


def base64_text(text: str) -> bool:
    """Whether ``text`` matches :data:`INLINE_PATTERN` (``[A-Za-z0-9+/]*`` then at most two ``=``).

    One pass in C (``bytes.translate`` deletes the alphabet; nothing may be left) instead of the
    pattern's regex: a MiB of base64 in 2.6 ms instead of 11 (#34). ``isascii`` first, so no
    character outside ASCII reaches the encoding.
    """
    core = text.rstrip("=")
    return (
        len(text) - len(core) <= 2
        and core.isascii()
        and not core.encode("ascii").translate(None, _BASE64_ALPHABET)
    )


def json_path(parts: Iterable[str | int]) -> str:
    """Render a path as ``$.outputs[0].width``."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _message(err: ValidationError) -> str:
    if err.validator == "pattern" and list(err.absolute_path) == ["jobId"] and isinstance(err.instance, str):
        return jobid.problem(err.instance) or "does not match the required pattern"
    # Never echo a whole (possibly megabytes-long) instance back to the caller.
    if err.validator in ("pattern", "maxLength", "minLength") and isinstance(err.instance, str):
        detail = {"pattern": "does not match the required pattern", "maxLength": "is too long"}
        return f"{detail.get(str(err.validator), 'is too short')} ({len(err.instance)} chars)"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        return f"unknown properties not allowed: {', '.join(extra)}"
    if err.validator in ("minProperties", "maxProperties") and err.path and err.path[-1] == "source":
        return "must have exactly one of inline, path, url"
    return str(err.message)[:300]


def violations(
    payload: Any, max_inline_bytes: int | None = None, path_sources: bool = True
) -> list[Violation]:
    """Every violation of the contract in ``payload`` (empty list when valid), in path order.

    ``path_sources=False`` (``PREVIEW_PATH_SOURCES=off``, the stacks' default) refuses ``source.path``.
    A payload over one of the schema's bounds (too long, too many) gets only those violations
    (:func:`mobius_preview_client.contract.shape.over_bounds`): checking the rest of it could take minutes.
    The compiled check comes first: it enforces every bound too, stopping at the first one passed,
    so a payload it accepts needs no walk of the bounds (#34).
    """
    accepted = _accepted(payload)
    if accepted:
        found: list[Violation] = []
    elif too_much := shape.over_bounds(payload):
        return too_much
    else:
        found = [
            Violation(json_path(e.absolute_path), _message(e)) for e in _validator().iter_errors(payload)
        ]
    if isinstance(payload, dict):
        found += _extra_checks(payload, max_inline_bytes, accepted)
        source = payload.get("source")
        if not path_sources and isinstance(source, dict) and "path" in source:
            where = json_path(["source", "path"])
            found.append(Violation(where, f"path sources are turned off here ({c.ENV_PATH_SOURCES}=off)"))
    return sorted(found, key=lambda v: v.path)


def _extra_checks(payload: dict[str, Any], max_inline_bytes: int | None, accepted: bool) -> list[Violation]:
    found: list[Violation] = []
    outputs = payload.get("outputs")
    if isinstance(outputs, list):
        for key in schema()["properties"]["outputs"]["uniqueItemProperties"]:  # the schema's own rule
            seen: set[str] = set()
            for i, out in enumerate(outputs):
                value = out.get(key) if isinstance(out, dict) else None
                if isinstance(value, str):
                    if value in seen:
                        where = json_path(["outputs", i, key])
                        found.append(Violation(where, f"duplicate output {key} {value!r}"))
                    seen.add(value)
    source = payload.get("source")
    inline = source.get("inline") if isinstance(source, dict) else None
    # Unless the schema accepted it (base64_text said yes), ask: else the schema already said so.
    if isinstance(inline, str) and (accepted or base64_text(inline)):
        size = base64_size(inline)
        if size is None:
            found.append(Violation(json_path(["source", "inline"]), "is not valid base64"))
        elif max_inline_bytes is not None and size > max_inline_bytes:
            cap = f"over the {max_inline_bytes}-byte cap"
            found.append(Violation(json_path(["source", "inline"]), f"decodes to {size} bytes, {cap}"))
    metadata = payload.get("metadata")
    if isinstance(metadata, dict) and metadata:
        stored = len(json.dumps(metadata, separators=(",", ":")))  # as BullMQ stores it: non-ASCII escaped
        if stored > c.METADATA_MAX_BYTES:
            limit = f"over the {c.METADATA_MAX_BYTES}-byte limit"
            found.append(Violation(json_path(["metadata"]), f"is {stored} bytes as stored JSON, {limit}"))
    path = source.get("path") if isinstance(source, dict) else None
    if isinstance(path, str) and ".." in Path(path).parts:
        found.append(Violation(json_path(["source", "path"]), "must not contain '..'"))
    return found


def base64_size(text: str) -> int | None:
    """The decoded size of ``text``, which matches ``[A-Za-z0-9+/]*={0,2}``; None if it is not base64.

    RFC 4648's rule, without decoding: complete groups of four, or a last group of two or three
    characters padded to four. It is what ``base64.b64decode(text, validate=True)`` (which the
    sources decode with) accepts on Python 3.13; 3.11 and 3.12 also accept padding after a
    complete group (``"AAAA="``), which is refused here so every supported Python takes the
    same payloads. ``tests/worker/contract/test_validation.py`` checks it.
    """
    data = len(text.rstrip("="))
    pad, rest = len(text) - data, data % 4
    if (rest == 0 and pad == 0) or (rest == 2 and pad == 2) or (rest == 3 and pad == 1):
        return data // 4 * 3 + {0: 0, 2: 1, 3: 2}[rest]
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400, -1e999999999: valid grammar, but no double holds them
        raise ValueError(f"number {text[:40]} is out of range")
    return number


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _decoded(text: str) -> Any:
    """``_DECODER.decode(text)``. A document that fills the whole text, as a job's always does, is
    read by the decoder's scanner alone, without ``decode``'s two whitespace matches and its
    ``raw_decode`` (#34); any other text (spaces around it, extra data, no value) goes to ``decode``,
    so every refusal and its message are ``decode``'s own. An error inside the document is the same
    either way: ``decode`` scans it from the same place."""
    try:
        payload, end = _SCAN(text, 0)
    except StopIteration:  # no value at the start: maybe spaces before it, else decode says why
        return _DECODER.decode(text)
    return payload if end == len(text) else _DECODER.decode(text)


def parse(body: bytes | str, max_bytes: int | None = None) -> Any:
    """Decode ``body`` as strict JSON (RFC 8259), or raise :class:`InvalidJobError` saying why.

    The one JSON gate: the API's bodies (bytes) and every job the worker reads back from Redis
    (text decoded with ``surrogateescape``, whoever wrote it) pass through it. Refused: anything
    but UTF-8 (UTF-16/32, a byte-order mark, undecodable bytes), invalid JSON, ``NaN``/``Infinity``
    and literals that overflow a double (``-1e400``), nesting deeper than the decoder's recursion
    limit, integers beyond Python's digit limit, lone surrogates (``"\\ud800"``), which no UTF-8
    encoder can write back out, and with ``max_bytes`` a body longer than that.
    """
    try:
        if isinstance(body, bytes):
            size, text = len(body), ""
            if max_bytes is None or size <= max_bytes:
                text = body.decode("utf-8")
        else:  # ASCII is UTF-8 as it stands; else encoding finds surrogate-escaped bytes
            text = body
            size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if max_bytes is not None and size > max_bytes:
            raise InvalidJobError([Violation("$", f"is {size} bytes, over the {max_bytes}-byte limit")])
        if text.startswith("\ufeff"):
            raise InvalidJobError([Violation("$", "is not valid JSON: starts with a byte-order mark")])
        payload = _decoded(text)
        if _SURROGATE_ESCAPE.search(text):  # the only way a lone surrogate gets in: check them all
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise InvalidJobError([Violation("$", "is nested too deeply")]) from None
    except UnicodeError as err:  # invalid UTF-8 in the body, or a lone surrogate in a string
        reason = err.reason if isinstance(err, UnicodeDecodeError | UnicodeEncodeError) else str(err)
        raise InvalidJobError([Violation("$", f"is not valid UTF-8 text: {reason}")]) from None
    except ValueError as err:  # JSONDecodeError, NaN/Infinity, an integer too long to convert
        raise InvalidJobError([Violation("$", f"is not valid JSON: {str(err)[:200]}")]) from None
    return payload


def validate(payload: Any, max_inline_bytes: int | None = None, path_sources: bool = True) -> dict[str, Any]:
    """Return ``payload`` if valid, else raise :class:`InvalidJobError` listing every violation."""
    found = violations(payload, max_inline_bytes, path_sources)
    if found:
        raise InvalidJobError(found)
    assert isinstance(payload, dict)
    return payload


@dataclass(frozen=True)
class Encoded:
    """A valid job as BullMQ stores it: its id, its priority and its compact JSON (what
    ``Queue.add`` would write), so the encoding can run away from the event loop."""

    job_id: str | None
    priority: int
    data: bytes


def encode(job: dict[str, Any]) -> Encoded:
    """``job`` (valid) as :class:`Encoded`, its JSON exactly as BullMQ's ``Queue.add`` writes it."""
    text = json.dumps(job, separators=(",", ":"), allow_nan=False)  # ASCII (ensure_ascii)
    job_id = job.get("jobId")
    return Encoded(str(job_id) if job_id else None, int(job.get("priority", 0)), text.encode("ascii"))


def prepare(payload: Any, max_inline_bytes: int | None = None, path_sources: bool = True) -> Encoded:
    """:func:`validate` then :func:`encode` (one call, for a thread or a process)."""
    return encode(validate(payload, max_inline_bytes, path_sources))


def max_payload_bytes(max_inline_bytes: int) -> int:
    """The largest payload worth reading: base64 of the biggest inline source plus 64 KiB of the rest."""
    return (max_inline_bytes + 2) // 3 * 4 + 64 * 1024


def check_file(data: bytes, max_inline_bytes: int) -> list[Violation]:
    """Every violation of one payload file's bytes (undecodable, oversized, or against the contract)."""
    limit = max_payload_bytes(max_inline_bytes)
    if len(data) > limit:
        return [Violation("$", f"is over the {limit}-byte limit for a payload")]
    try:
        return violations(parse(data), max_inline_bytes)
    except InvalidJobError as err:
        return err.violations
