"""Kubernetes label keys and values, as the API server checks them (a stack's labels and node selectors)."""

from __future__ import annotations

import re

_LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


def check_label_key(key: str) -> str:
    """``key`` if it is a label key (an optional DNS-subdomain prefix and ``/``, then a name)."""
    if len(key) > 253 or not _LABEL_KEY.fullmatch(key):
        raise ValueError(f"{key[:80]!r} is not a Kubernetes label key")
    return key


def check_label_value(value: str) -> str:
    """``value`` if it is a label value (at most 63 characters, alphanumeric at both ends)."""
    if not _LABEL_VALUE.fullmatch(value):
        raise ValueError(f"{value[:80]!r} is not a Kubernetes label value")
    return value


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """``labels`` if every key is a label key and every value a label value."""
    for key, value in labels.items():
        check_label_key(key)
        if not _LABEL_VALUE.fullmatch(value):
            raise ValueError(f"the value of {key!r} is not a Kubernetes label value")
    return labels
