"""``python -m worker validate``: the committed examples pass, the invalid ones fail as recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "schemas" / "examples"
INVALID = sorted((EXAMPLES / "invalid").glob("*.json"))


def validate(*args: str, stdin: bytes | None = None, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "validate", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        env={**os.environ, **env},
        timeout=60,
    )


def test_every_committed_example_is_valid() -> None:
    files = sorted(str(p.relative_to(REPO)) for p in EXAMPLES.glob("*.json"))
    assert len(files) >= 2
    done = validate(*files)
    assert done.returncode == 0, done.stdout.decode()
    assert done.stdout.decode().splitlines() == [f"{f}: ok" for f in files]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_each_invalid_example_lists_every_violation(path: Path) -> None:
    done = validate(str(path))
    assert done.returncode == 1
    expected = path.with_suffix(".expected").read_text().splitlines()
    assert len(expected) >= 1
    assert done.stdout.decode().splitlines() == [f"{path}: {line}" for line in expected]


def test_stdin_and_a_mix_of_files() -> None:
    good = (EXAMPLES / "minimal.json").read_bytes()
    done = validate("-", str(INVALID[0]), stdin=good)
    assert done.returncode == 1
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "<stdin>: ok" and lines[1].startswith(f"{INVALID[0]}: $.")


def test_an_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    done = validate(str(tmp_path / "missing.json"))
    assert done.returncode == 2
    assert b"missing.json: cannot read: No such file or directory" in done.stderr


def test_an_oversized_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (2 * 2**20))
    done = validate(str(big), PREVIEW_MAX_INLINE_BYTES="1000")
    assert done.returncode == 1
    assert b"over the 66872-byte limit for a payload" in done.stdout
