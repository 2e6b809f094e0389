"""The job contract: JSON Schema 2020-12 from ``schemas/`` plus the checks a schema cannot express.

Used by the API at enqueue and again by the worker before it renders, so a job
written straight into Redis by any producer is held to the same contract.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from worker import constants as c
from worker import jobid
from worker.errors import InvalidJobError, Violation

REPO_ROOT = Path(__file__).resolve().parent.parent
_BASE64_CHARS = re.compile(r"[A-Za-z0-9+/]*={0,2}")


@functools.cache
def schema() -> dict[str, Any]:
    """The job schema, loaded once from ``schemas/preview-job.schema.json``."""
    loaded: dict[str, Any] = json.loads((REPO_ROOT / c.SCHEMA_FILE).read_text())
    Draft202012Validator.check_schema(loaded)
    return loaded


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


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
    """
    found = [
        Violation(json_path(e.absolute_path), _message(e))
        for e in _validator().iter_errors(payload)
    ]
    if isinstance(payload, dict):
        found += _extra_checks(payload, max_inline_bytes)
        source = payload.get("source")
        if not path_sources and isinstance(source, dict) and "path" in source:
            where = json_path(["source", "path"])
            found.append(Violation(where, f"path sources are turned off here ({c.ENV_PATH_SOURCES}=off)"))
    return sorted(found, key=lambda v: v.path)


def _extra_checks(payload: dict[str, Any], max_inline_bytes: int | None) -> list[Violation]:
    found: list[Violation] = []
    outputs = payload.get("outputs")
    if isinstance(outputs, list):
        seen: set[str] = set()
        for i, out in enumerate(outputs):
            name = out.get("name") if isinstance(out, dict) else None
            if isinstance(name, str):
                if name in seen:
                    where = json_path(["outputs", i, "name"])
                    found.append(Violation(where, f"duplicate output name {name!r}"))
                seen.add(name)
    source = payload.get("source")
    inline = source.get("inline") if isinstance(source, dict) else None
    if isinstance(inline, str) and _BASE64_CHARS.fullmatch(inline):  # else the schema already said so
        where = json_path(["source", "inline"])
        try:
            size = len(base64.b64decode(inline, validate=True))
        except (binascii.Error, ValueError):
            found.append(Violation(where, "is not valid base64"))
        else:
            if max_inline_bytes is not None and size > max_inline_bytes:
                cap = f"over the {max_inline_bytes}-byte cap"
                found.append(Violation(where, f"decodes to {size} bytes, {cap}"))
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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse(body: bytes) -> Any:
    """Decode a request body as strict JSON, or raise :class:`InvalidJobError` saying why.

    Refused: invalid UTF-8 or JSON, ``NaN``/``Infinity`` (not JSON, and not storable as such),
    nesting deeper than the decoder's recursion limit, integers beyond Python's digit limit,
    and lone surrogates (``"\\ud800"``), which no UTF-8 encoder can write back out.
    """
    try:
        payload = json.loads(body, parse_constant=_no_constant)
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
