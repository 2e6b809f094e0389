"""A working copy of the Pulumi project whose stack files and release history are its own.

The demo and the end-to-end tests run the real program with ``pulumi`` and the
release tool from such a copy: the files those write (``Pulumi.<stack>.yaml``,
``releases/``) are copied, everything else (the program, ``infra/``, ``worker/``,
``.venv``) is a symlink to the repository. So trying the demo or running the tests
never changes a tracked file, and the program that runs is the repository's own.

A copy runs against the local cluster only: every stack file's ``cluster`` section is rewritten
to ``identity: local`` (:func:`bind_to_local_cluster`), so staging and prod preview there while
the committed files keep their real clusters' identities.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from infra.tools.local.layout import REPO_ROOT

#: Top-level entries never linked into a copy: git's own, local state, and what is copied.
_SKIP = {".git", ".local", "releases"}


#: A stack file's ``cluster`` section: the key line and its more-indented lines.
_CLUSTER_SECTION = re.compile(r"^  mobius-preview-worker:cluster:\n(?:    .*\n)*", re.MULTILINE)
LOCAL_CLUSTER_SECTION = "  mobius-preview-worker:cluster:\n    identity: local\n"


def bind_to_local_cluster(text: str) -> str:
    """A stack file's text with its ``cluster`` section replaced by the local cluster's."""
    return _CLUSTER_SECTION.sub(lambda _: LOCAL_CLUSTER_SECTION, text, count=1)


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
        if stack_file.name != "Pulumi.yaml":
            copied = dest / stack_file.name
            copied.write_text(bind_to_local_cluster(copied.read_text(encoding="utf-8")), encoding="utf-8")
    shutil.copytree(root / "releases", dest / "releases")
    return dest
