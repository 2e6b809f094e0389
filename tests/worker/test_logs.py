"""Logs: JSON lines with job fields; URL passwords and secret env values never written."""

from __future__ import annotations

import json
import logging

import pytest

from worker import constants as c
from worker import logs


def test_json_line_with_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("INFO")
    logs.get("consumer").info(
        "job completed", extra={"jobId": "a-1", "attempt": 2, "outcome": "completed", "duration": 0.5}
    )
    entry = json.loads(capsys.readouterr().out.strip())
    assert (
        entry["msg"] == "job completed" and entry["level"] == "info" and entry["logger"] == "worker.consumer"
    )
    assert (entry["jobId"], entry["attempt"], entry["outcome"], entry["duration"]) == (
        "a-1",
        2,
        "completed",
        0.5,
    )


def test_secrets_are_scrubbed(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2-pw@redis:6379/0")
    logs.setup("INFO")
    log = logs.get()
    log.info("connecting to redis://:hunter2-pw@redis:6379/0")
    log.warning("failed", extra={"error": "auth failed for rediss://admin:Sup3rS3cret@cache:6380"})
    log.info("raw %s", "redis://:hunter2-pw@redis:6379/0")
    out = capsys.readouterr().out
    assert "hunter2" not in out and "Sup3rS3cret" not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["msg"] == "connecting to redis://:***@redis:6379/0"
    assert lines[1]["error"] == "auth failed for rediss://admin:***@cache:6380"


@pytest.mark.parametrize("name", sorted(c.STORE_SECRET_ENV_VARS))
def test_store_credentials_are_scrubbed(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "wJalrXUtnFEMI-K7MDENG-bPxRfiCY")
    logs.setup("INFO")
    logs.get().error("signing failed with key %s", "wJalrXUtnFEMI-K7MDENG-bPxRfiCY")
    line = json.loads(capsys.readouterr().out.strip())
    assert line["msg"] == "signing failed with key <redacted>"


FAST_FIELDS = [
    {"jobId": "r1", "attempt": 1, "duration": 0.0002, "outcome": "dryrun"},
    {"jobId": "ä\"\\\n\u2028😀", "attempt": 2**70, "duration": 1e-07, "outcome": "failed",
     "reason": "ValueError: x", "cause": "invalid", "reused": True, "none": None, "off": False},
    {"jobId": "x", "duration": float("nan"), "big": float("inf"), "list": [1, {"a": 2}], "obj": object()},
    {"jobId": "x", "_private": "dropped", "attempt": -3},
    {"ts": "taken", "jobId": "x"},  # a key the line's own fields take: logging's own path, as ever
]  # fmt: skip


@pytest.mark.parametrize("fields", FAST_FIELDS)
def test_fast_info_line_is_the_logging_modules_line(
    fields: dict[str, object], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """logs.info writes, byte for byte, the line log.info would, whatever the fields hold (only the
    timestamp is the clock's), and secrets are scrubbed from it alike."""
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2-pw@redis:6379/0")
    logs.setup("INFO")
    log = logs.get("consumer")
    fields = {**fields, "error": "at redis://:hunter2-pw@redis:6379/0"}
    monkeypatch.setattr(logs.time, "time", lambda: 1796637677.8824)
    try:
        log.info("job dryrun", extra=dict(fields))
    except KeyError:  # logging refuses such a key: so must the fast line
        with pytest.raises(KeyError):
            logs.info(log, "job dryrun", dict(fields))
        return
    logs.info(log, "job dryrun", dict(fields))
    logging.getLogger().handlers[0].flush()
    slow, fast = capsys.readouterr().out.splitlines()
    assert fast == slow and "hunter2" not in fast


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_fast_info_line_defers_to_any_other_handler(capsys: pytest.CaptureFixture[str]) -> None:
    """With a handler besides setup()'s, a filter, or a level above INFO, logs.info is log.info."""
    logs.setup("INFO")
    log = logs.get("consumer")
    kept = _Kept()
    logging.getLogger().addHandler(kept)
    try:
        logs.info(log, "job completed", {"jobId": "a-1"})
    finally:
        logging.getLogger().removeHandler(kept)
    assert [(r.getMessage(), r.__dict__["jobId"]) for r in kept.records] == [("job completed", "a-1")]
    log.addFilter(lambda record: record.__dict__.get("jobId") != "a-2")
    try:
        logs.info(log, "job completed", {"jobId": "a-2"})
    finally:
        log.filters.clear()
    logs.setup("WARNING")
    logs.info(log, "job completed", {"jobId": "a-3"})
    logging.getLogger().handlers[0].flush()
    out = capsys.readouterr().out
    assert '"a-1"' in out and "a-2" not in out and "a-3" not in out


def teardown_module() -> None:
    logging.getLogger().handlers.clear()
