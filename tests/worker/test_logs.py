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


def teardown_module() -> None:
    logging.getLogger().handlers.clear()
