"""Every command README.md and docs/*.md give a reader, found by one parser (issue 35).

Two kinds:

- **Shell blocks** (```` ```sh ````, ``bash``, ``shell``, ``console``) are meant to be run. Each is
  preceded by a marker: ``<!-- doc-run: GROUP -->`` when a test runs it against the state it
  describes (:data:`RUNNERS` names the test of each group, which reads its blocks with
  :func:`group`), or ``<!-- not-runnable: REASON -->`` when it cannot run here (GitHub's
  runners, a real cloud, a system install), with the reason.
- **Inline commands** (a code span starting with one of :data:`COMMAND_WORDS`) name a command in
  prose. ``tests/test_doc_commands.py`` checks that each still parses: this project's own CLIs
  with their own argument parsers, other tools by their subcommand's ``--help``.

``tests/test_doc_commands.py`` fails on an unmarked block, an unknown group, and an inline
command that no longer parses, so a new command cannot drift unseen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = ("sh", "bash", "shell", "console")
#: Each group and the test that runs its blocks (the test calls ``group("<name>")``).
RUNNERS = {
    "cli": "tests/test_doc_commands.py",
    "local-cluster": "tests/e2e/test_doc_blocks.py",
    "demo": "tests/e2e/test_demo.py",
    "real-cluster": "tests/e2e/test_readme_recipe.py",
    "preview-access": "tests/e2e/test_engine_preview_access.py",
    "real-node": "tests/e2e/test_real_node_cli.py",
}
COMMAND_WORDS = ("./dev", "python -m", ".venv/bin/python -m", "pulumi", "kubectl", "curl", "git", "npm", "uv")
_FENCE = re.compile(r"^```(\w*)\s*$")
_RUN = re.compile(r"^<!-- doc-run: ([a-z0-9-]+) -->$")
_NOT_RUNNABLE = re.compile(r"^<!-- not-runnable: (.+?) -->$")
_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


@dataclass(frozen=True)
class Block:
    """One fenced shell block: where it is, its marker, and its text."""

    doc: Path
    line: int  # of the opening fence, 1-based
    group: str | None  # doc-run group
    reason: str | None  # not-runnable reason
    text: str
    language: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"

    def commands(self) -> list[str]:
        """The block's command lines: comments after two spaces and blank lines dropped, a trailing
        backslash joining the next line; in a ``console`` block only the ``$ `` lines (the rest is
        the output a reader should see, :meth:`output`)."""
        lines: list[str] = []
        for raw in self.text.replace("\\\n", " ").splitlines():
            if self.language == "console":
                if not raw.startswith("$ "):
                    continue
                raw = raw[2:]
            line = re.sub(r"\s{2,}#.*$", "", raw).strip()
            if line and not line.startswith("#"):
                lines.append(line)
        return lines

    def output(self) -> list[str]:
        """A ``console`` block's output lines: what running its commands prints."""
        return [line for line in self.text.splitlines() if line and not line.startswith("$ ")]


@dataclass(frozen=True)
class Inline:
    """One inline command in prose."""

    doc: Path
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def docs() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(paths: list[Path] | None = None) -> list[Block]:
    """Every shell block of ``paths`` (default: README.md and docs/*.md), with its marker."""
    found: list[Block] = []
    for doc in paths or docs():
        lines = doc.read_text().splitlines()
        i = 0
        while i < len(lines):
            fence = _FENCE.match(lines[i])
            if not fence:
                i += 1
                continue
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            if fence[1] in SHELL_LANGUAGES:
                before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
                run, skip = _RUN.match(before), _NOT_RUNNABLE.match(before)
                found.append(
                    Block(doc, i + 1, run[1] if run else None, skip[1] if skip else None,
                          "\n".join(lines[i + 1 : end]) + "\n", fence[1])
                )  # fmt: skip
            i = end + 1
    return found


def group(name: str) -> list[Block]:
    """The blocks a group's runner runs; fails when the group has none (its marker was lost)."""
    assert name in RUNNERS, f"unknown doc-run group {name!r}"
    found = [b for b in blocks() if b.group == name]
    assert found, f"no block is marked <!-- doc-run: {name} --> any more"
    return found


def inline_commands(paths: list[Path] | None = None) -> list[Inline]:
    """Every inline code span of prose (outside fenced blocks) that starts with a command word."""
    found: list[Inline] = []
    for doc in paths or docs():
        fenced = False
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            if line.startswith("```"):
                fenced = not fenced
                continue
            if fenced:
                continue
            for span in _SPAN.findall(line):
                if any(span == w or span.startswith(w + " ") for w in COMMAND_WORDS):
                    found.append(Inline(doc, number, span))
    return found
