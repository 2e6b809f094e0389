"""A working copy of the Pulumi project whose stack files and release history are its own.

The demo and the end-to-end tests run the real program with ``pulumi`` and the
release tool from such a copy: the files those write (``Pulumi.<stack>.yaml``,
``releases/``) are copied, everything else (the program, ``infra/``, ``worker/``,
``.venv``) is a symlink to the repository. So trying the demo or running the tests
never changes a tracked file, and the program that runs is the repository's own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from infra.tools.local.layout import REPO_ROOT

#: Top-level entries never linked into a copy: git's own, local state, and what is copied.
_SKIP = {".git", ".local", "releases"}


def project_copy(dest: Path, root: Path = REPO_ROOT) -> Path:
    """Make ``dest`` a fresh copy of the project in ``root``: stack files and releases/ copied.

    An existing copy is replaced, so it always starts from the committed stack files.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for entry in root.iterdir():
        if entry.name in _SKIP or entry.name.startswith("Pulumi."):
            continue
        (dest / entry.name).symlink_to(entry)
    for stack_file in root.glob("Pulumi*.yaml"):
        shutil.copy(stack_file, dest / stack_file.name)
    shutil.copytree(root / "releases", dest / "releases")
    return dest
