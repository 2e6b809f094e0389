"""Kubernetes resource quantities (``250m``, ``1``, ``512Mi``) as numbers."""

from __future__ import annotations

import re

_SUFFIX = {
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?")


def quantity(v: str, kind: str) -> float:
    """Parse a Kubernetes quantity (``250m``, ``1``, ``512Mi``) to a number."""
    m = _QUANTITY.fullmatch(v)
    if not m or (kind == "memory" and m.group(2) == "m"):
        example = "250m or 1" if kind == "cpu" else "512Mi or 1Gi"
        raise ValueError(f"must be a Kubernetes {kind} quantity like {example}, got {v!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2) or ""]
