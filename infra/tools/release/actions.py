"""The release actions: each computes the stack file's next release fields, then :func:`commit` records it.

Every action goes through :func:`prepare` (mint the release ID, render the edit
and validate it with the program's config model) and :func:`write` (replace the
stack file, append the history line, print the diff); :func:`commit` is both.
A refused action raises before anything is written. Committing the result to
git is :mod:`infra.tools.release.branches`.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from infra.config.fields.canary_weight import check_weight
from infra.config.fields.image_refs import split_image, validate_image_ref
from infra.errors import ReleaseError
from infra.tools.release import gitinfo, history, report
from infra.tools.release.history import Entry
from infra.tools.release.stackfile import CanaryState, ReleaseState, StackFile, stack_path

#: Looks up the stable digest (``sha256:…``, or a full ``repo@sha256:…``) that a stack's
#: last successful `pulumi up` deployed; None when it never succeeded.
DeployedDigest = Callable[[str], str | None]


@dataclass(frozen=True)
class Change:
    """A requested release: the fields to write and what to record about it."""

    action: str
    after: ReleaseState
    reason: str | None = None
    details: dict[str, Any] | None = None
    restores: str | None = None  # rollbacks: the release ID whose fields are restored


def image_flag(value: str, flag: str = "--image") -> str:
    """:func:`infra.config.fields.image_refs.validate_image_ref` (digest pinned, no tag), its reason under
    the flag's name."""
    try:
        return validate_image_ref(value)
    except ValueError as exc:
        raise ReleaseError(f"{flag}: {exc}") from None


def weight_flag(value: int, flag: str = "--weight") -> int:
    """:func:`infra.config.fields.canary_weight.check_weight`, its reason under the flag's name."""
    try:
        return check_weight(value)
    except ValueError as exc:
        raise ReleaseError(f"{flag}: {exc}") from None


def open_stack(root: Path, stack: str, flag: str = "--stack") -> StackFile:
    """Open ``Pulumi.<stack>.yaml`` under ``root`` for editing (``flag`` names the stack in refusals)."""
    return StackFile(stack_path(root, stack, flag))


def pin(sf: StackFile, image: str, reason: str | None = None) -> Change:
    """Set the stable image."""
    return Change("pin", replace(sf.state(), image=image_flag(image)), reason)


def canary_start(sf: StackFile, image: str, weight: int, reason: str | None = None) -> Change:
    """Run ``image`` as the canary at ``weight`` percent."""
    canary = CanaryState(weight_flag(weight), image_flag(image))
    return Change("canary", replace(sf.state(), canary=canary), reason)


def canary_step(sf: StackFile, weight: int, reason: str | None = None, action: str = "canary") -> Change:
    """Move the running canary to ``weight`` percent."""
    weight_flag(weight)
    state = sf.state()
    if state.canary_image is None:
        raise ReleaseError(
            f"{sf.path.name} has no canary image; start one with "
            f"`canary --stack {sf.stack} --image REPO@sha256:… --weight N`"
        )
    return Change(action, replace(state, canary=CanaryState(weight_flag(weight), state.canary_image)), reason)


def canary_abort(sf: StackFile, reason: str | None = None, action: str = "canary-abort") -> Change:
    """Weight 0 and the canary image cleared: the new version leaves the spec."""
    return Change(action, replace(sf.state(), canary=CanaryState(0, None)), reason)


def canary_complete(sf: StackFile, reason: str | None = None, action: str = "canary-complete") -> Change:
    """Make the canary image stable and clear the canary."""
    state = sf.state()
    if state.canary_image is None:
        raise ReleaseError(f"{sf.path.name} has no canary image to make stable")
    return Change(action, replace(state, image=state.canary_image, canary=CanaryState(0, None)), reason)


def promote(
    source: StackFile,
    target: StackFile,
    deployed: DeployedDigest,
    canary: int | None = None,
    force: bool = False,
    reason: str | None = None,
) -> Change:
    """Carry the source stack's stable image to the target, as stable or as a canary.

    Refused when the source's last successful `pulumi up` did not deploy that
    digest (``deployed`` answers from the stack's outputs), unless forced with a reason.
    Repository names are not compared: a digest names the same image in any registry.
    """
    if force and not reason:
        raise ReleaseError("--force needs --reason TEXT: the history records why the gate was skipped")
    if canary is not None:
        weight_flag(canary, "--canary")
    image = source.state().image
    if image is None:
        raise ReleaseError(f"{source.path.name} pins no image to promote")
    # A forced promotion skips the engine too: it may be the reason for forcing.
    running = None if force else deployed(source.stack)
    gate_ok = running is not None and _digest(running) == _digest(image)
    if not gate_ok and not force:
        raise ReleaseError(
            f"refusing to promote {image}: stack {source.stack}'s last successful `pulumi up` deployed "
            f"{running or 'nothing'}; run `pulumi up --stack {source.stack}` first, "
            "or pass --force --reason TEXT"
        )
    details = {"from": source.stack, "image": image, "deployed": running, "forced": not gate_ok}
    state = target.state()
    if canary is None:
        return Change("promote", replace(state, image=image), reason, details)
    after = replace(state, canary=CanaryState(canary, image))
    return Change("promote", after, reason, details)


def rollback(root: Path, sf: StackFile, to: str | None = None, reason: str | None = None) -> Change:
    """Restore the previous (or the named) release's fields exactly as the file held them."""
    restores, state = history.rollback_target(history.read(root, sf.stack), sf.state(), to)
    return Change("rollback", state, reason, {"restores": restores}, restores=restores)


def _digest(ref: str) -> str:
    return split_image(ref)[1] if "@" in ref else ref


def _fields(state: ReleaseState) -> ReleaseState:
    return replace(state, release_id=None)


@dataclass(frozen=True)
class Pending:
    """A validated release not yet written: the history entry and the stack file's new text."""

    entry: Entry
    old_text: str
    new_text: str


def prepare(
    root: Path, sf: StackFile, change: Change, taken: Iterable[str] = (), tail: str = ""
) -> Pending | None:
    """Mint the release ID and render and validate the edit; None when the stack already holds it.

    ``taken`` and ``tail`` go to :func:`~infra.tools.release.history.next_id` (IDs of unmerged
    release branches, and a random part that keeps concurrent clones apart).

    Raises :class:`~infra.errors.ConfigError` when the program would refuse the
    result; nothing is written either way.
    """
    before = sf.state()
    entries = history.read(root, sf.stack)
    if _fields(change.after) == _fields(before) and (change.restores is None or change.after == before):
        return None
    now = datetime.now(UTC)
    release_id = history.next_id(entries, before.release_id, now.date(), taken, tail)
    after = change.after if change.restores is not None else replace(change.after, release_id=release_id)
    new_text = sf.render(after)
    sf.validate(new_text)  # ConfigError: the program would refuse this file, so nothing is written
    entry = Entry(
        id=release_id,
        stack=sf.stack,
        action=change.action,
        time=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        author=gitinfo.author(root),
        before=before,
        after=after,
        reason=change.reason,
        details=change.details or {},
    )
    return Pending(entry, sf.text, new_text)


def write(root: Path, sf: StackFile, pending: Pending, out: TextIO | None = None) -> Entry:
    """Replace the stack file and append the history line (both or neither); print the diff."""
    sf.write(pending.new_text)
    try:
        history.append(root, pending.entry)
    except OSError:
        sf.write(pending.old_text)  # keep the file and its history in step
        raise
    report.release(pending.entry.to_json())
    print_change(sf, pending.old_text, pending.new_text, pending.entry, out or sys.stdout)
    return pending.entry


def commit(root: Path, sf: StackFile, change: Change, out: TextIO | None = None) -> Entry | None:
    """Validate, write and record ``change``; print the diff.

    Returns the history entry, or None when the stack already holds those fields.
    """
    pending = prepare(root, sf, change)
    if pending is None:
        print(f"{sf.path.name}: already at the requested release; nothing to do", file=out or sys.stdout)
        return None
    return write(root, sf, pending, out)


def print_change(sf: StackFile, old_text: str, new_text: str, entry: Entry, out: TextIO) -> None:
    """The diff of the stack file and the history line's ID."""
    diff = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=f"a/{sf.path.name}",
        tofile=f"b/{sf.path.name}",
    )
    out.write("".join(diff))
    print(
        f"recorded {entry.action} as release {entry.id} in {history.HISTORY_DIR}/{sf.stack}.jsonl", file=out
    )
