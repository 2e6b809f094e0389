"""Per-stack release history: ``releases/<stack>.jsonl``, one JSON object per line, append-only.

Each line records one release: its ID, what ran it (action, who, when, why) and
the release fields of the stack file before and after. Appending lines keeps a
promotion a small reviewable commit, and two concurrent releases of one stack
meet as a merge conflict instead of silently interleaving.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from infra.config.release_marks import HISTORY_DIR as HISTORY_DIR  # declared below the tools
from infra.config.release_marks import history_file
from infra.errors import HistoryError
from infra.tools.release.stackfile import ReleaseState

# Actions that restore an earlier release ID instead of minting one.
ROLLBACK_ACTIONS = frozenset({"rollback"})


@dataclass(frozen=True)
class Entry:
    """One release of one stack."""

    id: str
    stack: str
    action: str
    time: str
    author: str
    before: ReleaseState
    after: ReleaseState
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The line written to the history file."""
        out: dict[str, Any] = {
            "id": self.id,
            "stack": self.stack,
            "action": self.action,
            "time": self.time,
            "author": self.author,
            "reason": self.reason,
            "before": self.before.to_json(),
            "after": self.after.to_json(),
        }
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        """Inverse of :meth:`to_json`."""
        return cls(
            id=str(data["id"]),
            stack=str(data["stack"]),
            action=str(data["action"]),
            time=str(data["time"]),
            author=str(data["author"]),
            reason=data.get("reason"),
            before=ReleaseState.from_json(data["before"]),
            after=ReleaseState.from_json(data["after"]),
            details=dict(data.get("details") or {}),
        )


def history_path(root: Path, stack: str) -> Path:
    """Where a stack's history lives."""
    return history_file(root, stack)


def read(root: Path, stack: str) -> list[Entry]:
    """All entries of a stack, oldest first; an absent file is an empty history."""
    path = history_path(root, stack)
    if not path.exists():
        return []
    return parse(path.read_text(encoding="utf-8"), str(path))


def parse(text: str, where: str) -> list[Entry]:
    """The entries of a history file's ``text`` (``where`` names it in errors: a path, or ``ref:path``)."""
    entries: list[Entry] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = Entry.from_json(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise HistoryError(f"{where}:{number}: not a release entry: {exc}") from None
        if entry.id in seen:
            raise HistoryError(f"{where}:{number}: duplicate release ID {entry.id!r}")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def append(root: Path, entry: Entry) -> None:
    """Append one entry (creating the file and folder on first use)."""
    path = history_path(root, entry.stack)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry.to_json(), ensure_ascii=False)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def next_id(
    entries: list[Entry], current: str | None, day: date, taken: Iterable[str] = (), tail: str = ""
) -> str:
    """``r-<yyyymmdd>-<nn>[-<tail>]``: the day's next sequence number, above every ID already used.

    The stack file's own ID counts too, so a file released before it had a
    history never gets its ID reused, and so do ``taken`` (the IDs of release
    branches, here and on the remote: releases not merged yet). ``tail`` (a few
    random hex digits) keeps two clones releasing at the same moment apart.
    """
    prefix = f"r-{day:%Y%m%d}-"
    used = [e.id for e in entries] + [e.before.release_id or "" for e in entries] + [current or "", *taken]
    numbers = [
        int(m.group(1))
        for i in used
        if (m := _SEQUENCE.fullmatch(i.removeprefix(prefix))) and i.startswith(prefix)
    ]
    return f"{prefix}{max(numbers, default=0) + 1:02d}" + (f"-{tail}" if tail else "")


_SEQUENCE = re.compile(r"(\d+)(?:-[0-9a-z]+)?")


def known_states(entries: list[Entry]) -> dict[str, ReleaseState]:
    """Release ID → the release fields the stack file held under that ID."""
    states: dict[str, ReleaseState] = {}
    for entry in entries:
        before_id = entry.before.release_id
        if before_id is not None:
            states.setdefault(before_id, entry.before)
        states[entry.id] = entry.after
    return states


def rollback_target(entries: list[Entry], current: ReleaseState, to: str | None) -> tuple[str, ReleaseState]:
    """The release to restore: ``to`` if named, else the one before the current release.

    "Before" is the state the stack file held when the current release was made,
    so repeated rollbacks walk back one release at a time.
    """
    if to is not None:
        states = known_states(entries)
        if to not in states:
            recent = ", ".join(list(states)[-5:]) or "none"
            raise HistoryError(f"--to: no release {to!r} in the history (recent: {recent})")
        return to, states[to]
    origin = next(
        (e for e in reversed(entries) if e.id == current.release_id and e.action not in ROLLBACK_ACTIONS),
        None,
    )
    if origin is None:
        raise HistoryError(
            f"the current release {current.release_id or '(none)'} was not made by the release tool; "
            "name the release to restore with --to ID (see `history`)"
        )
    return origin.before.release_id or f"(before {origin.id})", origin.before


def short(image: str | None) -> str:
    """``sha256:0123456789ab`` for a pinned image, ``-`` for none."""
    if not image:
        return "-"
    _, _, digest = image.partition("@")
    return digest[:19] if digest else image


def table(entries: list[Entry]) -> str:
    """The ``history`` command's table, oldest first."""
    rows = [("ID", "WHEN (UTC)", "WHO", "ACTION", "STABLE", "CANARY", "REASON")]
    for e in entries:
        stable = _arrow(short(e.before.image), short(e.after.image))
        canary = _arrow(
            f"{e.before.canary_weight}% {short(e.before.canary_image)}",
            f"{e.after.canary_weight}% {short(e.after.canary_image)}",
        )
        rows.append((e.id, e.time, e.author.split(" <")[0], e.action, stable, canary, e.reason or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _arrow(before: str, after: str) -> str:
    return after if before == after else f"{before} → {after}"
