"""The release history's marks for the dashboard: each release's ID, action and time, read from
``releases/<stack>.jsonl`` (written by ``python -m infra release``; :mod:`infra.tools.release.history`
owns the whole entry). The stack's Grafana dashboard annotates each release from these
(``infra/manifests/observability/dashboard.py``), so the program reads them here, below the tools.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from infra.errors import HistoryError

#: The history's folder, relative to the repository (the Pulumi program's working directory).
HISTORY_DIR: Final = "releases"
#: The newest releases the dashboard marks: the annotation query stays short.
MARKED: Final = 50
#: What an ID or an action may be before it goes into a PromQL string literal (the tool writes
#: ``r-<date>-<nn>-<hex>`` and words like ``promote``): nothing that could end the literal.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ReleaseMark:
    """One release as the dashboard marks it."""

    id: str
    action: str
    epoch: int  # seconds: the history's ``time``


def history_file(root: Path, stack: str) -> Path:
    """Where ``stack``'s history lives under ``root``."""
    return root / HISTORY_DIR / f"{stack}.jsonl"


def read_marks(root: Path, stack: str, newest: int = MARKED) -> tuple[ReleaseMark, ...]:
    """The ``newest`` releases of ``stack``, oldest first; none when it has no history yet."""
    path = history_file(root, stack)
    if not path.exists():
        return ()
    marks: list[ReleaseMark] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            when = datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00"))
            if when.tzinfo is None:
                raise ValueError(f"time {entry['time']!r} has no time zone")
            for key in ("id", "action"):
                if not isinstance(entry[key], str) or not _TOKEN.fullmatch(entry[key]):
                    raise ValueError(f"{key} {str(entry[key])[:80]!r} is not {_TOKEN.pattern}")
            marks.append(ReleaseMark(entry["id"], entry["action"], int(when.timestamp())))
        except (ValueError, KeyError, TypeError) as exc:
            raise HistoryError(f"{path}:{number}: not a release entry: {exc}") from None
    return tuple(marks[-newest:])
