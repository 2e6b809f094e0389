"""The history file: round trip, append-only, clear errors, release IDs, rollback targets."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from release_testkit import Run, digest, git

from infra.errors import HistoryError
from infra.tools.release import history
from infra.tools.release.history import Entry
from infra.tools.release.stackfile import CanaryState, ReleaseState, StackFile

BEFORE = ReleaseState(digest("1"), CanaryState(0, None), "r-20261101-01")
AFTER = ReleaseState(digest("1"), CanaryState(10, digest("2")), "r-20261123-01")


def entry(id_: str, before: ReleaseState, after: ReleaseState, action: str = "canary") -> Entry:
    return Entry(
        id_, "prod", action, "2026-11-23T04:00:00Z", "A <a@b.c>", before, after, "why", {"k": [1, "x"]}
    )


def test_entries_round_trip_through_the_file(tmp_path: Path) -> None:
    written = [
        entry("r-20261123-01", BEFORE, AFTER),
        entry("r-20261123-02", AFTER, ReleaseState(None, None, None), "rollback"),
    ]
    for e in written:
        history.append(tmp_path, e)
    assert history.read(tmp_path, "prod") == written
    lines = (tmp_path / "releases" / "prod.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [e.to_json() for e in written]
    assert json.loads(lines[1])["after"] == {}  # absent keys stay absent, not null


def test_history_is_append_only_across_commands(repo: Path, run: Run) -> None:
    path = repo / "releases" / "prod.jsonl"
    assert run("canary", "--stack", "prod", "--image", digest("a"), "--weight", "5").code == 0
    first = path.read_bytes()
    assert run("canary", "--stack", "prod", "--weight", "15").code == 0
    assert path.read_bytes().startswith(first) and path.read_bytes().count(b"\n") == 2


def test_missing_history_is_empty(tmp_path: Path) -> None:
    assert history.read(tmp_path, "prod") == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "x"}\n', "releases/prod.jsonl:1: not a release entry: 'stack'"),
        ("\nnot json\n", "releases/prod.jsonl:2: not a release entry: Expecting value"),
    ],
)
def test_malformed_lines_are_named(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "releases").mkdir()
    (tmp_path / "releases" / "prod.jsonl").write_text(content)
    with pytest.raises(HistoryError, match=message.replace("/", ".")):
        history.read(tmp_path, "prod")


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    history.append(tmp_path, entry("r-20261123-01", BEFORE, AFTER))
    history.append(tmp_path, entry("r-20261123-01", AFTER, BEFORE))
    with pytest.raises(HistoryError, match=r"prod.jsonl:2: duplicate release ID 'r-20261123-01'"):
        history.read(tmp_path, "prod")


def test_next_id_counts_per_day_above_every_used_id() -> None:
    day = date(2026, 11, 23)
    assert history.next_id([], None, day) == "r-20261123-01"
    assert history.next_id([], "r-20261123-07", day) == "r-20261123-08"
    entries = [entry("r-20261123-03", BEFORE, AFTER), entry("r-20261122-09", BEFORE, AFTER)]
    assert history.next_id(entries, "r-20261123-01", day) == "r-20261123-04"
    assert history.next_id(entries, None, date(2026, 11, 24)) == "r-20261124-01"


def test_rollback_target_resolution() -> None:
    e1 = entry("r-20261123-01", BEFORE, AFTER)
    after2 = ReleaseState(digest("1"), CanaryState(50, digest("2")), "r-20261123-02")
    e2 = entry("r-20261123-02", AFTER, after2)
    entries = [e1, e2]
    assert history.rollback_target(entries, after2, None) == ("r-20261123-01", AFTER)
    assert history.rollback_target(entries, AFTER, None) == ("r-20261101-01", BEFORE)
    assert history.rollback_target(entries, after2, "r-20261101-01") == ("r-20261101-01", BEFORE)
    with pytest.raises(HistoryError, match="current release r-20261101-01 was not made by the release tool"):
        history.rollback_target(entries, BEFORE, None)


def test_dev_stack_without_release_id_round_trips_byte_for_byte(repo: Path, run: Run) -> None:
    dev = repo / "Pulumi.dev.yaml"
    original = dev.read_bytes()
    assert StackFile(dev).state().release_id is None
    assert run("pin", "--stack", "dev", "--image", digest("c")).code == 0
    assert b"mobius-preview-worker:releaseId: r-" in dev.read_bytes()
    assert run("rollback", "--stack", "dev").code == 0
    assert dev.read_bytes() == original


def test_quoted_values_keep_their_quotes(repo: Path, run: Run) -> None:
    prod = repo / "Pulumi.prod.yaml"
    state = StackFile(prod).state()
    text = prod.read_text().replace(f"image: {state.image}", f'image: "{state.image}"')
    prod.write_text(text)
    git(repo, "commit", "-q", "-am", "quote the image")
    git(repo, "push", "-q", "origin", "main")
    assert run("pin", "--stack", "prod", "--image", digest("d")).code == 0
    assert f'mobius-preview-worker:image: "{digest("d")}"' in prod.read_text()
    assert run("rollback", "--stack", "prod", "--to", str(state.release_id)).code == 0
    assert prod.read_text() == text
