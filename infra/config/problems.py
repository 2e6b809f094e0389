"""Translating pydantic's validation errors into ``"<dotted.key>: <reason>"`` lines."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from infra.config.base_model import number_text

_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "bool": "true or false",
    "dict": "a mapping",
    "model": "a mapping",
    "model_attributes": "a mapping",
    "list": "a list",
}


_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("more than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}


def _reason(err: Any) -> str:
    kind, got = err["type"], err.get("input")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind in _BOUNDS:  # a tunable's pydantic bound (worker/tunables.py)
        word, key = _BOUNDS[kind]
        return f"must be {word} {number_text(err['ctx'][key])}, got {got!r}"
    if kind == "string_pattern_mismatch":
        return f"must match {err['ctx']['pattern']}, got {got!r}"
    if kind == "literal_error":
        return f"must be one of {err['ctx']['expected']}, got {got!r}"
    base = kind.split("_")[0] if not kind.startswith("model_attributes") else "model_attributes"
    if kind.endswith(("_type", "_parsing", "_from_float")) and base in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[base]}, got {got!r}"
    return f"{err['msg']}, got {got!r}"


def problems_from(exc: ValidationError) -> list[str]:
    """One ``"<dotted.key>: <reason>"`` line per problem, in input order."""
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "stack_rule":
            problems += [f"{key + '.' if key else ''}{sub}: {why}" for sub, why in err["ctx"]["problems"]]
        else:
            problems.append(f"{key or '<root>'}: {_reason(err)}")
    return problems
