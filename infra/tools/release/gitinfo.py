"""Who is releasing: the git author, as git itself would record it."""

import os
import re
from pathlib import Path

from infra import runner
from infra.errors import InfraError

_IDENT = re.compile(r"(?P<who>.*?) \d+ [+-]\d{4}")


def author(repo: Path) -> str:
    """``Name <email>`` from ``git var GIT_AUTHOR_IDENT`` (honours GIT_AUTHOR_* env and config).

    CI runners often have no git identity; then the GitHub actor or the login
    name stands in, so a history line always says who ran the command.
    """
    try:
        out = runner.run(["git", "var", "GIT_AUTHOR_IDENT"], cwd=str(repo), timeout=10).strip()
    except InfraError:
        out = ""
    match = _IDENT.fullmatch(out)
    if match:
        return match.group("who")
    actor = os.environ.get("GITHUB_ACTOR")
    if actor:
        return f"{actor} (github actor)"
    return os.environ.get("USER") or "unknown"
