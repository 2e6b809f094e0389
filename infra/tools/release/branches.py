"""A release is a pull request: one commit per release on a branch named for it.

A release command edits ``Pulumi.<stack>.yaml`` and appends its history line;
:class:`Recorder` commits exactly those two files on ``release/<stack>/<id>``
and, with ``push``, pushes the branch and opens its pull request (with ``gh``
where it is installed; otherwise it prints the command). Merging the pull
request is what deploys (``.github/workflows/main.yml``).

A progressive rollout uses one branch for the whole rollout,
``release/<stack>/rollout-<digest>``: every step is a commit pushed before the
step is applied, so a cancelled rollout's branch says where it stopped and a
rerun resumes there (:mod:`infra.tools.release.rollout`).

Everything runs the real ``git`` in the stack files' work tree.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from infra import runner
from infra.config.fields.image_refs import split_image
from infra.errors import ReleaseError
from infra.tools.release import history, report
from infra.tools.release.history import Entry

PREFIX = "release"
TRAILER_ID = "Release-Id"
TRAILER_STACK = "Release-Stack"
TRAILER_ACTION = "Release-Action"
TRAILER_STEP = "Rollout-Step"
TRAILER_BASE = "Release-Base"


def release_branch(stack: str, release_id: str) -> str:
    """The branch of one release: ``release/prod/r-20261202-01``."""
    return f"{PREFIX}/{stack}/{release_id}"


def rollout_branch(stack: str, canary_image: str) -> str:
    """The branch of one rollout, named for the canary's digest so a rerun finds it again."""
    digest = split_image(canary_image)[1] if "@" in canary_image else canary_image
    return f"{PREFIX}/{stack}/rollout-{digest.removeprefix('sha256:')[:12]}"


def message(entry: Entry, step: str | None = None, base: str | None = None) -> str:
    """The commit message: a subject naming the release, the reason, and machine-readable trailers.

    ``base`` is the blob of the stack file the release was cut from (``Release-Base``), which
    ``check-base`` compares with the default branch's before the pull request merges.
    """
    subject = f"release({entry.stack}): {entry.action} {entry.id}"
    if step is not None:
        subject += f" — {step}"
    lines = [subject, ""]
    if entry.reason:
        lines += [entry.reason, ""]
    lines += [
        f"stable: {entry.before.image or '-'} -> {entry.after.image or '-'}",
        f"canary: {entry.before.canary_weight}% {entry.before.canary_image or '-'} -> "
        f"{entry.after.canary_weight}% {entry.after.canary_image or '-'}",
        "",
        f"{TRAILER_ID}: {entry.id}",
        f"{TRAILER_STACK}: {entry.stack}",
        f"{TRAILER_ACTION}: {entry.action}",
    ]
    if base is not None:
        lines.append(f"{TRAILER_BASE}: {base}")
    if step is not None:
        lines.append(f"{TRAILER_STEP}: {step}")
        if entry.action == "rollout-step":
            lines[2:2] = [
                "Committed and pushed before this step's `pulumi up`. If this is the branch's last "
                "commit, the rollout stopped during this step: rerun it to resume here.",
                "",
            ]
    return "\n".join(lines) + "\n"


def run_tool(
    cmd: list[str], cwd: Path, input_text: str | None = None, check: bool = True, why: str = ""
) -> runner.Done:
    """Run ``git`` or ``gh`` in ``cwd``; a failure is a :class:`ReleaseError` with the tool's own words.

    ``why`` is added to the message of a failure (what state it leaves behind).
    """
    done = runner.call(cmd, error=ReleaseError, cwd=cwd, stdin=input_text, timeout=120)
    if check and done.returncode != 0:
        raise runner.failure(done, ReleaseError, why)
    return done


@dataclass
class Recorder:
    """Commits releases in the work tree at ``root``; pushes and opens pull requests with ``push``."""

    root: Path
    push: bool = False
    remote: str = "origin"
    base: str = "main"
    out: TextIO | None = None

    def git(self, *args: str, check: bool = True, input_text: str | None = None) -> runner.Done:
        """Run ``git`` in the work tree; a failure is a :class:`ReleaseError` with git's own words."""
        return run_tool(["git", *args], self.root, input_text, check)

    def _print(self, text: str) -> None:
        print(text, file=self.out or sys.stdout)

    def paths(self, stack: str) -> list[str]:
        """The two files a release of ``stack`` changes, relative to the work tree root."""
        return [f"Pulumi.{stack}.yaml", str(history.history_path(Path("."), stack))]

    def check(self, stack: str, branch: str | None = None) -> None:
        """Refuse, before anything is written, what would make the release commit wrong.

        The root must be a git work tree, the stack file and its history must hold no
        uncommitted edits (the commit would carry them unreviewed), and a release
        branch of that name must not exist already (an earlier release with that ID
        is not merged yet).
        """
        self.require_work_tree()
        dirty = [
            line[3:]
            for line in self.git("status", "--porcelain", "--", *self.paths(stack)).stdout.splitlines()
        ]
        if dirty:
            raise ReleaseError(
                f"uncommitted changes in {', '.join(dirty)}: "
                "commit or stash them first, so the release commit holds only the release"
            )
        if branch is not None and self.branch_exists(branch):
            raise ReleaseError(
                f"branch {branch} exists: a release with that ID is not merged yet; merge its pull "
                f"request (or delete the branch) before the next release of {stack}"
            )

    def require_work_tree(self) -> None:
        """Refuse a root that is not a git work tree."""
        inside = self.git("rev-parse", "--is-inside-work-tree", check=False)
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            raise ReleaseError(
                f"{self.root} is not a git work tree: a release is a commit on a release branch "
                "(pass --no-git to edit the files only)"
            )

    def branch_exists(self, branch: str) -> bool:
        """True when the branch exists locally."""
        found = self.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
        return found.returncode == 0

    def current_branch(self) -> str:
        """The checked-out branch ('' when HEAD is detached)."""
        return self.git("branch", "--show-current").stdout.strip()

    def start(self, branch: str) -> None:
        """Create ``branch`` at HEAD and switch to it (edited files come along)."""
        self.git("switch", "--quiet", "--create", branch)

    def resume(self, branch: str) -> bool:
        """Switch to ``branch`` as the remote (with ``push``) or this clone has it; False if neither."""
        if self.push:
            found = self.git("ls-remote", "--exit-code", "--heads", self.remote, branch, check=False)
            if found.returncode == 0:
                self.git("fetch", "--quiet", self.remote, f"refs/heads/{branch}")
                self.git("switch", "--quiet", "--force-create", branch, "FETCH_HEAD")
                return True
        if self.current_branch() == branch:
            return True
        if self.branch_exists(branch):
            self.git("switch", "--quiet", branch)
            return True
        return False

    def commit(self, entry: Entry, branch: str, step: str | None = None, base: str | None = None) -> str:
        """Commit the release's two files on ``branch`` (pushed with ``push``); returns the commit."""
        self.git("add", "--", *self.paths(entry.stack))
        self.git("commit", "--quiet", "--no-verify", "-F", "-", input_text=message(entry, step, base))
        sha = self.git("rev-parse", "HEAD").stdout.strip()
        if self.push:
            self.push_branch(branch)
        report.committed(entry.id, branch, sha, self.push)
        self._print(f"committed {entry.id} on {branch} ({sha[:12]}){' and pushed' if self.push else ''}")
        return sha

    def push_branch(self, branch: str) -> None:
        """Push HEAD to ``branch`` on the remote; a refusal is one line saying what to do."""
        done = self.git("push", "--quiet", self.remote, f"HEAD:refs/heads/{branch}", check=False)
        if done.returncode == 0:
            return
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        rejected = next((line for line in lines if "rejected" in line or "error:" in line), None)
        why = rejected or (lines[0] if lines else f"git push exited {done.returncode}")
        why = why.removeprefix("error: ").lstrip("! ")
        raise ReleaseError(
            f"{self.remote} refused the push of {branch} ({why}): the commit "
            f"is on {branch} in this clone; delete that branch and rerun the command for a new release ID"
        )

    def has_remote(self) -> bool:
        """True when the clone has the remote (a local demo may have none)."""
        return self.git("remote", "get-url", self.remote, check=False).returncode == 0

    def base_commit(self) -> str:
        """The commit a release is cut from: the remote's default branch, fetched now, else the local one."""
        if self.has_remote():
            self.git("fetch", "--quiet", self.remote, f"refs/heads/{self.base}")
            return self.git("rev-parse", "FETCH_HEAD").stdout.strip()
        found = self.git(
            "rev-parse", "--verify", "--quiet", f"refs/heads/{self.base}^{{commit}}", check=False
        )
        if found.returncode != 0:
            raise ReleaseError(f"no branch {self.base} to cut the release from (pass --base BRANCH)")
        return found.stdout.strip()

    def taken_ids(self, stack: str) -> list[str]:
        """The release IDs of every ``release/<stack>/*`` branch, in this clone and on the remote."""
        prefix = f"{PREFIX}/{stack}/"
        refs = self.git("for-each-ref", "--format=%(refname:short)", f"refs/heads/{prefix}").stdout.split()
        if self.has_remote():
            listed = self.git("ls-remote", "--heads", self.remote, f"refs/heads/{prefix}*", check=False)
            refs += [line.split("refs/heads/", 1)[-1] for line in listed.stdout.splitlines()]
        return [ref.removeprefix(prefix) for ref in refs if ref.startswith(prefix)]

    def open_pull_request(self, branch: str, title: str, body: str) -> None:
        """Open the pull request with ``gh`` when pushing and it is installed; else print how to."""
        create = ["gh", "pr", "create", "--base", self.base, "--head", branch, "--title", title]
        if self.push and shutil.which("gh"):
            pushed = f"the branch {branch} is pushed; open the pull request by hand"
            done = run_tool([*create, "--body-file", "-"], self.root, body, why=pushed)
            report.pull_request(done.stdout.strip())
            self._print(f"pull request: {done.stdout.strip()}")
            return
        self._print("next: open the pull request; merging it deploys")
        if not self.push:
            self._print(f"  git push {self.remote} {branch}")
        self._print(f"  gh pr create --base {self.base} --head {branch} --title {_quote(title)} --fill")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def open_branches(root: Path, stack: str, remote: str = "origin", base: str = "main") -> list[dict[str, str]]:
    """The ``release/<stack>/*`` branches not merged into ``base``, on the remote (or here, without one).

    Each is ``{"branch", "kind": "release"|"rollout", "commit", "step"}``; ``step`` is the last
    commit's ``Rollout-Step`` trailer (where a rollout stands), ``""`` for others. The remote's
    branches and its ``base`` are fetched (into ``FETCH_HEAD`` only) to tell merged from open.
    """
    rec = Recorder(root, remote=remote, base=base)
    rec.require_work_tree()
    prefix = f"refs/heads/{PREFIX}/{stack}/"
    if rec.has_remote():
        listed = rec.git("ls-remote", "--heads", remote, f"refs/heads/{base}", f"{prefix}*").stdout
        heads = {ref: sha for sha, ref in (line.split("\t", 1) for line in listed.splitlines())}
        if f"refs/heads/{base}" not in heads:
            raise ReleaseError(f"{remote} has no branch {base}")
        rec.git("fetch", "--quiet", remote, *heads)
    else:
        fmt = "--format=%(objectname) %(refname)"
        listed = rec.git("for-each-ref", fmt, f"refs/heads/{base}", prefix).stdout
        heads = {ref: sha for sha, ref in (line.split(" ", 1) for line in listed.splitlines())}
        if f"refs/heads/{base}" not in heads:
            raise ReleaseError(f"no branch {base} in {root}")
    tip = heads.pop(f"refs/heads/{base}")
    found = []
    for ref, sha in sorted(heads.items()):
        if rec.git("merge-base", "--is-ancestor", sha, tip, check=False).returncode == 0:
            continue  # merged, the branch just not deleted
        step = rec.git("log", "-1", f"--format=%(trailers:key={TRAILER_STEP},valueonly)", sha).stdout.strip()
        name = ref.removeprefix("refs/heads/")
        kind = "rollout" if name.removeprefix(f"{PREFIX}/{stack}/").startswith("rollout-") else "release"
        found.append({"branch": name, "kind": kind, "commit": sha, "step": step})
    return found
