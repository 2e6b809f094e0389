"""What a merge deploys: ``python -m infra release changed --base SHA --head SHA``.

``main.yml`` runs ``pulumi up`` for exactly these stacks of the promotion path
(:data:`~infra.tools.release.stacks.PROMOTION_PATH`), so merging a release's pull request deploys that stack
and nothing else:

* a stack whose ``Pulumi.<stack>.yaml`` changed;
* the first stack of the path when the program itself changed (:data:`PROGRAM`).
  Later stacks get a program change with their next release, and that release's
  pull request previews it.

Changes that deploy nothing (tests, docs, the release tooling, history lines)
start no ``up``. It also says whether the worker image's inputs changed
(:data:`IMAGE`), which is when ``main.yml`` builds an image and opens its pin's
release pull request for the first stack.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from pathlib import Path

from infra.errors import ReleaseError
from infra.tools.release.branches import run_tool
from infra.tools.release.stacks import FIRST_STACK, PROMOTION_PATH

#: What the Pulumi program is made of (globs over repository paths).
PROGRAM = (
    "Pulumi.yaml",
    "__main__.py",
    "infra/*",
    "policy/*",
    "schemas/*",
    "worker/constants.py",
    "worker/tunables.py",
    "worker/queue/budget.py",
    "pyproject.toml",
    "uv.lock",
)

#: Inside :data:`PROGRAM`'s folders, tooling the program never imports.
NOT_PROGRAM = (
    "infra/tools/local/*",
    "infra/tools/image/*",
    "infra/tools/release/*",
    "infra/tools/demo/*",
    "infra/tools/snapshot/*",
    "infra/tools/verify/*",
    "infra/tools/ci/*",
)

#: What the worker image is built from (the Dockerfile copies these).
IMAGE = ("Dockerfile", "worker/*", "schemas/*", "pyproject.toml", "uv.lock")

_STACK_FILE = re.compile(r"Pulumi\.(?P<stack>[a-z0-9][a-z0-9_-]{0,62})\.yaml")
_SHA = re.compile(r"[0-9a-f]{7,64}|HEAD(~\d+)?")


def is_program(path: str) -> bool:
    """True when ``path`` is part of what ``pulumi up`` runs."""
    if any(fnmatch.fnmatchcase(path, pattern) for pattern in NOT_PROGRAM):
        return False
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in PROGRAM)


def stacks_to_deploy(paths: Iterable[str]) -> list[str]:
    """The stacks of the promotion path, in its order, that a change of ``paths`` deploys."""
    changed = set(paths)
    chosen = {m.group("stack") for p in changed if (m := _STACK_FILE.fullmatch(p))}
    if any(is_program(p) for p in changed):
        chosen.add(FIRST_STACK)
    return [s for s in PROMOTION_PATH if s in chosen]


def image_changed(paths: Iterable[str]) -> bool:
    """True when a change of ``paths`` changes what the worker image is built from."""
    return any(fnmatch.fnmatchcase(p, pattern) for p in paths for pattern in IMAGE)


def outputs(paths: list[str]) -> str:
    """The command's output: ``stacks=[…]`` and ``image=true|false`` lines, for ``$GITHUB_OUTPUT``."""
    return f"stacks={json.dumps(stacks_to_deploy(paths))}\nimage={str(image_changed(paths)).lower()}\n"


def changed_paths(root: Path, base: str, head: str) -> list[str]:
    """``git diff --name-only base head``: every path a merge changed (renames count twice)."""
    for name, rev in (("BASE", base), ("HEAD", head)):
        if not _SHA.fullmatch(rev):
            raise ReleaseError(f"{name}: {rev!r} is not a commit SHA")
    return run_tool(["git", "diff", "--name-only", "--no-renames", base, head], root).stdout.splitlines()
