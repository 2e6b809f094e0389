"""Where a release is cut: a temporary work tree at the tip of the default branch.

A release pull request must hold exactly its own release, whatever the clone's
state: the branch checked out, an earlier release branch, uncommitted edits.
:func:`release_tree` fetches the remote's default branch (a clone without the
remote uses its local one, never a release branch), adds a ``git worktree`` of
it in a temporary directory, and removes it afterwards; the user's checkout,
branch and edits are never touched. The release branch it commits stays in the
clone (work trees share branches), so ``git push``/``gh pr create`` work from there.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from infra.tools.release.branches import Recorder


@contextmanager
def release_tree(recorder: Recorder) -> Iterator[Recorder]:
    """A recorder whose root is a fresh work tree of the default branch's tip, removed on exit."""
    recorder.require_work_tree()
    base = recorder.base_commit()
    scratch = Path(tempfile.mkdtemp(prefix="release-"))
    tree = scratch / "tree"
    recorder.git("worktree", "add", "--quiet", "--detach", str(tree), base)
    try:
        venv, linked = recorder.root / ".venv", tree / ".venv"
        if venv.is_dir() and not linked.is_symlink() and not linked.exists():
            linked.symlink_to(venv)  # --apply runs the program (Pulumi.yaml: virtualenv .venv)
        yield replace(recorder, root=tree)
    finally:
        # Not `git worktree prune`: that would also drop other work trees' entries that are offline.
        recorder.git("worktree", "remove", "--force", str(tree), check=False)
        shutil.rmtree(scratch, ignore_errors=True)


def blob(recorder: Recorder, path: str) -> str:
    """The blob hash of ``path`` at the work tree's HEAD (the base a release was cut from)."""
    return recorder.git("rev-parse", f"HEAD:{path}").stdout.strip()
