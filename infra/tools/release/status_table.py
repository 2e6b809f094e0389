"""``release status``'s table: one block per part (or its reason), then the warnings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from infra.tools.release.status import PARTS, Part, Status
from worker.constants import TRACK_CANARY, TRACK_STABLE


def render(status: Status) -> str:
    """The human table: one block per part, then the warnings."""
    lines = [f"stack {status.stack}"]
    file, deployed, live, open_ = (status.parts[name] for name in PARTS)
    lines.append("")
    lines += _block("STACK FILE", file, _file_rows)
    lines += _block("LAST PULUMI UP", deployed, _deployed_rows)
    lines += _block("LIVE", live, _live_rows)
    lines += _block("OPEN BRANCHES", open_, _branch_rows)
    found = status.warnings()
    unread = [name for name in PARTS if status.parts[name].error is not None]
    if found:
        lines.append("WARNINGS")
    elif unread:
        lines.append(f"no disagreement in what could be read ({', '.join(unread)} unavailable)")
    else:
        lines.append("no warnings: the stack file, the last deploy and the cluster agree")
    lines += [f"  ! {w}" for w in found]
    return "\n".join(lines)


def _block(title: str, part: Part, rows: Callable[[Any], list[tuple[str, str]]]) -> list[str]:
    if part.error is not None:
        return [title, f"  unavailable: {part.error}", ""]
    pairs = rows(part.values)
    if not pairs:
        return [title, "  none", ""]
    width = max(len(k) for k, _ in pairs)
    return [title, *(f"  {k.ljust(width)}  {v}".rstrip() for k, v in pairs), ""]


def _file_rows(v: dict[str, Any]) -> list[tuple[str, str]]:
    canary = v.get("canary") or {}
    return [
        ("stable", v.get("image") or "-"),
        ("canary", f"{v['canaryWeight']}% {canary.get('image') or '-'}"),
        ("release", v.get("releaseId") or "-"),
    ]


def _deployed_rows(v: dict[str, Any]) -> list[tuple[str, str]]:
    digests = v["digests"]
    return [
        ("result", f"{v['result']} at {v['time'] or '?'}"),
        ("stable", digests.get(TRACK_STABLE) or "-"),
        ("canary", f"{v['canaryWeight']}% {digests.get(TRACK_CANARY) or '-'}"),
        ("release", v["releaseId"] or "-"),
    ]


def _live_rows(v: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("namespace", v["namespace"])]
    for track, info in sorted(v["tracks"].items()):
        pods = ", ".join(f"{n} ready on {image}" for image, n in sorted(info["readyPods"].items()))
        rows.append((track, f"{info['deployment']}: {info['replicas']} wanted; {pods or 'no pods'}"))
    return rows


def _branch_rows(v: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (b["branch"], f"{b['kind']} {b['commit'][:12]}" + (f", {b['step']}" if b.get("step") else ""))
        for b in v
    ]
