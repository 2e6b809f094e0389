"""``release check-base``: a release pull request may merge only onto the stack file it was cut from.

Two releases of one stack cut from the same ``main`` can both merge cleanly when they
edit different lines, and the second then deploys a file nobody reviewed. Each release
commit records the blob of ``Pulumi.<stack>.yaml`` it was cut from (the ``Release-Base``
trailer; a commit without one, such as a rollout step, counts its parent's file). The
check compares that with the base branch's file now, for every stack the pull request
releases, and names each one that changed since: the release must be cut again.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from infra.tools.release import branches
from infra.tools.release import report as json_report
from infra.tools.release.branches import run_tool

_FIELD, _RECORD = "\x1f", "\x1e"


def recorded_bases(root: Path, base: str, head: str = "HEAD") -> dict[str, str]:
    """Stack → the stack-file blob its first release commit in ``base..head`` was cut from."""
    trailer = "%(trailers:key={},valueonly,separator=)"
    fmt = _FIELD.join(["%H", trailer.format(branches.TRAILER_STACK), trailer.format(branches.TRAILER_BASE)])
    log = _git(root, "log", "--reverse", "--no-merges", f"--format={fmt}{_RECORD}", f"{base}..{head}")
    bases: dict[str, str] = {}
    for record in log.split(_RECORD):
        if not record.strip("\n"):
            continue
        # Not str.strip(): Python counts the separators as whitespace.
        sha, stack, blob = (part.strip(" \n") for part in record.strip("\n").split(_FIELD))
        if stack and stack not in bases:
            bases[stack] = blob or _git(root, "rev-parse", f"{sha}^:Pulumi.{stack}.yaml").strip()
    return bases


def changed_since_cut(root: Path, base: str, head: str = "HEAD") -> tuple[list[str], list[str]]:
    """(stacks whose file on ``base`` differs from the one their release was cut from, stacks checked)."""
    bases = recorded_bases(root, base, head)
    now = {stack: _git(root, "rev-parse", f"{base}:Pulumi.{stack}.yaml").strip() for stack in bases}
    return [stack for stack, blob in bases.items() if now[stack] != blob], list(bases)


def report(root: Path, base: str, head: str, out: TextIO) -> int:
    """1 with ``rebase: <stack> changed since this release was cut`` for each stale stack, else 0."""
    stale_stacks, checked = changed_since_cut(root, base, head)
    json_report.put(stale=stale_stacks, checked=checked)
    for stack in stale_stacks:
        print(f"rebase: {stack} changed since this release was cut", file=sys.stderr)
    if stale_stacks:
        print(
            "  cut the release again from the current base (rerun its release command), "
            "then close this pull request and delete its branch",
            file=sys.stderr,
        )
        return 1
    if not checked:
        print(f"check-base: no release commits in {base}..{head}; nothing to check", file=out)
    for stack in checked:
        print(f"check-base: {stack} was cut from {base}'s current Pulumi.{stack}.yaml", file=out)
    return 0


def _git(root: Path, *args: str) -> str:
    return run_tool(["git", *args], root).stdout
