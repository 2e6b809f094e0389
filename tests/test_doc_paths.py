"""Every repository path the README, CONTRIBUTING and docs name exists: a move leaves no stale pointer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").rglob("*.md"))]
TOP = (
    "worker",
    "infra",
    "tests",
    "policy",
    "bench",
    "deploy",
    "deps",
    "schemas",
    "docs",
    "releases",
    ".github",
    ".ci",
)
PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(re.escape(t) for t in TOP)})/[\w./*<>-]*[\w*>])")
#: Text that looks like a path and is not one of the repository's: kubectl's `deploy/<name>`, and
#: what `python -m bench` writes (ignored by git).
NOT_PATHS = (re.compile(r"deploy/preview-[\w-]+"), re.compile(r"bench/results/.*"))


def named_paths(doc: Path) -> list[tuple[int, str]]:
    """The (line, path) pairs a Markdown file names; a ``<placeholder>`` is left out, a ``*`` is a glob."""
    found = []
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        for match in PATH.finditer(line):
            path = match.group(1)
            if "<" not in path and not any(rule.fullmatch(path) for rule in NOT_PATHS):
                found.append((number, path))
    return found


def test_the_doc_scanner_sees_paths_and_skips_placeholders(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "`worker/settings.py`, infra/tools/release/, `deps/apt-*.txt`, releases/<stack>.jsonl,"
        " not kubectl deploy/preview-worker-stable\n"
    )
    assert named_paths(doc) == [(1, "worker/settings.py"), (1, "infra/tools/release"), (1, "deps/apt-*.txt")]


def exists(path: str) -> bool:
    """A path, or a glob that matches at least one file."""
    return any(REPO.glob(path)) if "*" in path else (REPO / path).exists()


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(REPO)))
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    missing = [f"{doc.name}:{line}: {path}" for line, path in named_paths(doc) if not exists(path)]
    assert not missing, "stale paths:\n" + "\n".join(missing)
