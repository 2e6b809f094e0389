"""The most a job can be, from the schema's own bounds, and two cheap checks against it.

Full validation (jsonschema) costs time in proportion to what it is given: 1.2 M metadata keys
took 50 s, and a 100 k-character URL 350 s in its pattern. The schema bounds every part of a job
(``maxItems``, ``maxProperties``, ``maxLength``, ``additionalProperties: false``), so a body that
exceeds them can be refused before any of that work:

- :class:`Scanner` reads a body as it arrives, chunk by chunk, at the speed of a regular
  expression, and refuses it as soon as it holds more JSON tokens, or nests deeper, than any job
  can (:func:`limits`): the API stops reading there;
- :func:`over_bounds` walks a parsed payload along the schema, only as far as the bounds allow,
  and lists what is too long or too many; :func:`mobius_preview_client.contract.validation.violations` runs it
  first and validates fully only a payload within every bound. It asks :func:`fits` first: the
  same walk, built once from the schema into one small function per schema node, that only says
  yes or no (about 3 µs for a typical job instead of 30 µs; the worker runs it on every job).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mobius_preview_client.errors import Violation

#: Every byte but JSON's structure, deleted by ``bytes.translate`` to leave the structure alone.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b"[]{},:")


@dataclass(frozen=True)
class Limits:
    """The most JSON tokens (brackets, commas, colons, strings) and nesting levels a job can have."""

    tokens: int
    depth: int


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not ref:
        return node
    found: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return _resolve(schema, found)


def _most(schema: dict[str, Any], node: dict[str, Any]) -> tuple[int, int, int]:
    """(values, keys, depth) at most in an instance of ``node``; ValueError where it is unbounded."""
    node = _resolve(schema, node)
    kinds = node.get("type")
    if kinds == "array":
        if "maxItems" not in node:
            raise ValueError("an array without maxItems")
        values, keys, depth = _most(schema, node["items"])
        return 1 + node["maxItems"] * values, node["maxItems"] * keys, 1 + depth
    if kinds == "object":
        members = [_most(schema, p) for p in node.get("properties", {}).values()]
        extra = node.get("additionalProperties", True)
        if extra is not False:
            if "maxProperties" not in node or not isinstance(extra, dict):
                raise ValueError("an object open to any property without maxProperties")
            members += [_most(schema, extra)] * node["maxProperties"]
        members.sort(reverse=True)
        members = members[: node.get("maxProperties", len(members))]
        values = 1 + sum(m[0] for m in members)
        return values, len(members) + sum(m[1] for m in members), 1 + max((m[2] for m in members), default=0)
    return 1, 0, 0  # a scalar: a string, number, boolean or null (a union of scalars included)


@functools.cache
def limits() -> Limits:
    """The job schema's :class:`Limits`: a value is at most three tokens (open, close, the comma
    before it) and a key two (its string and colon), so no valid job's text has more."""
    from mobius_preview_client.contract.validation import schema

    values, keys, depth = _most(schema(), schema())
    return Limits(tokens=3 * values + 2 * keys, depth=depth)


class ShapeError(ValueError):
    """A body holds more, or nests deeper, than any job can; ``str()`` says which, for the ``$`` path."""


class Scanner:
    """Counts a JSON body's tokens and depth as its chunks arrive; :meth:`feed` raises
    :class:`ShapeError` at the first chunk that takes it past ``limits``.

    It does not check the grammar (the parser does, on a body that passed): it only keeps the
    parser, and the validator after it, from being handed more than a job can hold. A chunk
    costs a few passes of ``bytes`` methods (no Python step per byte, so a 14 MiB string is as
    cheap as the memory it is in) plus one step per bracket, and brackets are bounded.
    """

    def __init__(self, bound: Limits | None = None) -> None:
        self.bound = bound or limits()
        self.tokens = self.depth = 0
        self._in_string = False
        self._carry = b""  # a backslash that ended the last chunk: it escapes this one's first byte

    def feed(self, chunk: bytes) -> None:
        """Account for the next ``chunk`` of the body."""
        # Escapes go first: `\\` pairs, then `\"`, so every quote left delimits a string (a
        # run of backslashes pairs off from its start, as the parser reads it).
        text = (self._carry + chunk).replace(b"\\\\", b"")
        self._carry = b"\\" if text.endswith(b"\\") else b""
        text = text[: len(text) - len(self._carry)].replace(b'\\"', b"")
        quotes = text.count(b'"')
        self.tokens += (quotes + (0 if self._in_string else 1)) // 2  # the strings this chunk opens
        self._check_tokens()
        parts = text.split(b'"')
        outside = b"".join(parts[1 if self._in_string else 0 :: 2])
        self._in_string ^= quotes % 2 == 1
        structure = outside.translate(None, _NOT_STRUCTURE)
        for byte in structure[: self.bound.tokens - self.tokens + 1]:  # the depth first, then the count
            if byte in b"[{":
                self.depth += 1
                if self.depth > self.bound.depth:
                    raise ShapeError(f"is nested too deeply: a job is at most {self.bound.depth} levels deep")
            elif byte in b"]}":
                self.depth -= 1
        self.tokens += len(structure)
        self._check_tokens()

    def _check_tokens(self) -> None:
        if self.tokens > self.bound.tokens:
            raise ShapeError(
                f"has more than {self.bound.tokens} JSON tokens (brackets, commas, colons, strings), "
                "more than any job: see maxItems and maxProperties in the schema"
            )


def over_bounds(payload: Any) -> list[Violation]:
    """What in ``payload`` is longer or more numerous than the schema allows, each with its path.

    Walks only as far as the bounds allow (an array over ``maxItems`` is reported, not entered),
    so its cost is bounded by the schema whatever the payload holds.
    """
    if fits(payload):  # first: the import below costs a job about 1 µs (#34)
        return []
    from mobius_preview_client.contract.validation import schema

    return list(_walk(schema(), schema(), payload, []))


def fits(payload: Any) -> bool:
    """Whether ``payload`` is within every bound of the schema: :func:`over_bounds` finds nothing."""
    return _fits()(payload)


@functools.cache
def _fits() -> Callable[[Any], bool]:
    from mobius_preview_client.contract.validation import schema

    return _fitter(schema(), schema())


def _always(value: Any) -> bool:
    return True


def _fitter(schema: dict[str, Any], node: dict[str, Any]) -> Callable[[Any], bool]:
    """:func:`_walk` at ``node`` as a yes-or-no function, the schema's bounds bound into it.

    Built once (the schema has no cycles: :func:`limits` would not end either), so a job costs
    one call per value it holds and no path strings. Must say no exactly where _walk yields.
    """
    node = _resolve(schema, node)
    longest: int | None = node.get("maxLength")
    items = _fitter(schema, node["items"]) if "items" in node else None
    most_items: int | None = node.get("maxItems")
    known = {key: _fitter(schema, child) for key, child in node.get("properties", {}).items()}
    extra = node.get("additionalProperties")
    other = _fitter(schema, extra) if isinstance(extra, dict) else None
    most: int | None = len(known) if extra is False else node.get("maxProperties")
    names: int | None = node.get("propertyNames", {}).get("maxLength")
    if longest is None and items is None and not known and other is None and most is None and names is None:
        return _always  # no bound here or below: a scalar's node

    def fit(value: Any) -> bool:
        if isinstance(value, str):
            return longest is None or len(value) <= longest
        if isinstance(value, list):
            if items is None:
                return True
            if most_items is not None and len(value) > most_items:
                return False
            return all(map(items, value))
        if isinstance(value, dict):
            if most is not None and len(value) > most:
                return False
            for key, item in value.items():
                if names is not None and len(key) > names:
                    return False
                child = known.get(key, other)
                if child is not None and not child(item):
                    return False
        return True

    return fit


def _walk(
    schema: dict[str, Any], node: dict[str, Any], value: Any, path: list[str | int]
) -> Iterator[Violation]:
    from mobius_preview_client.contract.validation import json_path

    node = _resolve(schema, node)
    where = json_path(path)
    if isinstance(value, str) and len(value) > node.get("maxLength", len(value)):
        yield Violation(where, f"is too long ({len(value)} chars, at most {node['maxLength']})")
    elif isinstance(value, list) and "items" in node:
        if len(value) > node.get("maxItems", len(value)):
            yield Violation(where, f"has {len(value)} items, more than {node['maxItems']}")
            return
        for i, item in enumerate(value):
            yield from _walk(schema, node["items"], item, [*path, i])
    elif isinstance(value, dict):
        known, extra = node.get("properties", {}), node.get("additionalProperties")
        most = len(known) if extra is False else node.get("maxProperties", len(value))
        if len(value) > most:
            yield Violation(where, f"has {len(value)} properties, more than {most}")
            return
        names = node.get("propertyNames", {}).get("maxLength")
        for key, item in value.items():
            if names is not None and len(key) > names:
                yield Violation(where, f"has a property name of {len(key)} chars, more than {names}")
            child = known.get(key, extra if isinstance(extra, dict) else None)
            if child is not None:
                yield from _walk(schema, child, item, [*path, key])
