"""``python -m worker validate FILE…`` (and the wheel's ``python -m mobius_preview_client validate``):
the job contract as a command, for producers and CI.

Each file (``-`` is stdin) is read up to the payload size limit, parsed as strict JSON and
checked exactly as the API and the worker check a job. Every violation is printed as
``FILE: $.json.path: message``; a valid file prints ``FILE: ok``.
Exit codes: 0 all valid, 1 any invalid, 2 a file cannot be read.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mobius_preview_client.contract.validation import check_file, max_payload_bytes


def _read(name: str, limit: int) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read(limit + 1)
    with Path(name).open("rb") as handle:
        return handle.read(limit + 1)  # one byte over says "too big" without reading it all


def validate_files(names: list[str], max_inline_bytes: int) -> int:
    """Check each file; print the result per file; return the exit code."""
    limit = max_payload_bytes(max_inline_bytes)
    invalid = unreadable = 0
    for name in names:
        label = "<stdin>" if name == "-" else name
        try:
            data = _read(name, limit)
        except OSError as exc:
            print(f"{label}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            unreadable += 1
            continue
        found = check_file(data, max_inline_bytes)
        if not found:
            print(f"{label}: ok")
            continue
        invalid += 1
        for violation in found:
            print(f"{label}: {violation}")
    if unreadable:
        return 2
    return 1 if invalid else 0
