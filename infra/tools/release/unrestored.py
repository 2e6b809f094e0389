"""What a rollback does not restore, said in its output.

``rollback`` restores the release fields (``image``, ``canary.weight``, ``canary.image``,
``releaseId``) exactly as the stack file held them under the release it goes back to. The
history records only those, and restoring the whole file would also undo reviewed changes
merged since (a replica bound, a rotated setting) without anyone choosing to. So it leaves
the rest and names it: every other key of the stack file that differs from the file of
that release (found in git: the commit that set its ``releaseId``), and the program.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from infra.tools.release.branches import run_tool
from infra.tools.release.stackfile import KEY_CANARY, KEY_IMAGE, KEY_RELEASE

RESTORED = "image, canary.weight, canary.image and releaseId"
_ID = re.compile(r"r-[0-9]{8}-[0-9]+(?:-[0-9a-z]+)?")


def changed_keys(root: Path, stack: str, release_id: str, current_text: str) -> list[str] | None:
    """Config keys, other than the release fields, that differ from the file of ``release_id``.

    None when git has no commit that set that release ID (a release made before the tool,
    a clone without that history, or no git at all).
    """
    if not _ID.fullmatch(release_id):
        return None
    name = f"Pulumi.{stack}.yaml"
    pattern = f"releaseId: ['\"]?{release_id}['\"]?$"
    # Commits whose diff adds or removes that line, newest first: the first that holds it set it.
    found = run_tool(["git", "log", "--format=%H", "-G", pattern, "--", name], root, check=False)
    files = (run_tool(["git", "show", f"{sha}:{name}"], root, check=False) for sha in found.stdout.split())
    then = next(
        (_config(f.stdout) for f in files if f.returncode == 0 and _holds(f.stdout, release_id)), None
    )
    if then is None:
        return None
    now = _config(current_text)
    keys = (set(then) | set(now)) - {KEY_IMAGE, KEY_CANARY, KEY_RELEASE}
    return sorted(k for k in keys if then.get(k) != now.get(k))


def _holds(text: str, release_id: str) -> bool:
    return _config(text).get(KEY_RELEASE) == release_id


def _config(text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    config = doc.get("config") if isinstance(doc, dict) else None
    return config if isinstance(config, dict) else {}


def lines(root: Path, stack: str, release_id: str, current_text: str) -> list[str]:
    """The rollback's report of what it leaves as it is."""
    keys = changed_keys(root, stack, release_id, current_text)
    out = [f"rollback restored {RESTORED} as {release_id} had them; it did NOT restore:"]
    if keys is None:
        out.append(f"  - other keys of Pulumi.{stack}.yaml (git has no file of {release_id} to compare)")
    elif keys:
        out += [f"  - {key} (changed since {release_id}; revert its pull request to undo it)" for key in keys]
    else:
        out.append(f"  - (no other key of Pulumi.{stack}.yaml changed since {release_id})")
    out.append(
        "  - the program (infra/, __main__.py, policy/) and what the stack reads from outside it (vault)"
    )
    return out
