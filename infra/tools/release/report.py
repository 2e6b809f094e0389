"""``--json``: a release command's result as one JSON document on stdout (shape: docs/releases.md#json).

While a command runs with ``--json`` its human output (diffs, engine logs, hints) goes to
stderr, and the modules that do something record it here: :func:`release` (a history line
written), :func:`committed` (its branch and commit), :func:`pull_request`, :func:`applied`
(a ``pulumi up``) and :func:`put` (a read-only command's data: ``history``, ``status``,
``changed``, ``check-base``). Outside ``--json`` these calls do nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

#: The version of the document's shape; bumped when a key changes meaning or goes away.
SCHEMA = 1


@dataclass
class Report:
    """What one command did, gathered while it runs."""

    command: str
    releases: list[dict[str, Any]] = field(default_factory=list)
    pull_requests: list[str] = field(default_factory=list)
    applies: list[dict[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self, code: int, error: str | None) -> dict[str, Any]:
        """The document: the common keys, then the command's own."""
        return {
            "schema": SCHEMA,
            "command": self.command,
            "exitCode": code,
            "error": error,
            "releases": self.releases,
            "pullRequests": self.pull_requests,
            "applied": self.applies,
            **self.data,
        }


_ACTIVE: list[Report] = []


def _current() -> Report | None:
    return _ACTIVE[-1] if _ACTIVE else None


def release(entry: dict[str, Any]) -> None:
    """A history line was written (``branch``/``commit`` follow with :func:`committed`)."""
    if (rep := _current()) is not None:
        rep.releases.append({**entry, "branch": None, "commit": None, "pushed": False})


def committed(release_id: str, branch: str, commit: str, pushed: bool) -> None:
    """The release ``release_id`` was committed on ``branch`` (and pushed)."""
    if (rep := _current()) is not None:
        for item in reversed(rep.releases):
            if item.get("id") == release_id:
                item.update(branch=branch, commit=commit, pushed=pushed)
                return


def pull_request(url: str) -> None:
    """A pull request was opened."""
    if (rep := _current()) is not None:
        rep.pull_requests.append(url)


def applied(stack: str, result: str) -> None:
    """``pulumi up`` of ``stack`` ran with ``result``."""
    if (rep := _current()) is not None:
        rep.applies.append({"stack": stack, "result": result})


def put(**values: Any) -> None:
    """A command's own keys (a read-only command's answer)."""
    if (rep := _current()) is not None:
        rep.data.update(values)


class _Tee(io.TextIOBase):
    """Writes to ``target`` and keeps a copy (the error a command prints on stderr)."""

    def __init__(self, target: TextIO) -> None:
        self.target, self.copy = target, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()


def run_json(command: str, run: Callable[[], int], out: TextIO | None = None) -> int:
    """Run a command with its human output on stderr, then print its document on ``out`` (stdout).

    ``error`` is what the command printed as its refusal (its ``release: …`` lines), or null.
    """
    out = out or sys.stdout
    rep = Report(command)
    tee = _Tee(sys.stderr)
    _ACTIVE.append(rep)
    try:
        with contextlib.redirect_stdout(sys.stderr), contextlib.redirect_stderr(tee):
            code = run()
    finally:
        _ACTIVE.pop()
    said = tee.copy.getvalue()
    start = said.find("release: ")
    error = said[start:].strip() if code != 0 and start >= 0 else None
    print(json.dumps(rep.to_json(code, error), indent=2, ensure_ascii=False), file=out)
    return code
