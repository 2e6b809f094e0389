"""``python -m infra ci path --base REF``: which checks a pull request needs, ``fast`` or ``full``.

A pull request that changes only stack files (``Pulumi.<stack>.yaml``) and release history
(``releases/<stack>.jsonl``) changes no code: a release, a rollback, a config tweak. It takes
the fast path in ``pr.yml``: config validation and the rendered objects (``snapshot``), then
``pulumi preview`` with the policy pack, without the full suite, so a rollback pull request is
ready for review in minutes. Anything else (a deleted stack file too) takes the full path.
The diff is GitHub's: from the merge base of ``REF`` and the head to the head.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from infra import runner
from infra.errors import InputError, ToolchainError

FAST, FULL = "fast", "full"
#: What a fast pull request may touch (and only add or modify).
FAST_PATHS = (
    re.compile(r"Pulumi\.[a-z0-9][a-z0-9_-]{0,62}\.yaml"),
    re.compile(r"releases/[a-z0-9][a-z0-9_-]{0,62}\.jsonl"),
)


@dataclass(frozen=True)
class Decision:
    """The path and why: the files that decided it."""

    path: str
    why: str


def decide(changes: list[tuple[str, str]]) -> Decision:
    """``fast`` when every ``(status, path)`` adds or modifies a stack file or history; else ``full``."""
    if not changes:
        return Decision(FULL, "no changed files found; the full checks run")
    other = [p for s, p in changes if s not in ("A", "M") or not any(r.fullmatch(p) for r in FAST_PATHS)]
    if other:
        shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        return Decision(FULL, f"changes more than stack files and release history: {shown}")
    return Decision(FAST, "only stack files and release history: " + ", ".join(p for _, p in changes))


def changed(root: Path, base: str, head: str = "HEAD") -> list[tuple[str, str]]:
    """``(status, path)`` of every file ``head`` changed since its merge base with ``base``."""
    for flag, ref in (("--base", base), ("--head", head)):
        verify = ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"]
        if ref.startswith("-") or runner.call(verify, cwd=root, timeout=30).returncode != 0:
            raise InputError(f"{flag}: {ref!r} is not a commit here (fetch it first: fetch-depth 0)")
    diff = ["git", "diff", "--name-status", "--no-renames", f"{base}...{head}"]
    listed = runner.run(diff, error=ToolchainError, cwd=root, timeout=60)
    rows = [line.split("\t", 1) for line in listed.splitlines() if line.strip()]
    return [(status[:1], path) for status, path in rows]
