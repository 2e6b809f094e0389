"""Settings: defaults from the issue, one clear line per bad value, exit 2, secrets never printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker import constants as c
from worker.settings import Settings, env_of, redact_url, unknown_env

REPO = Path(__file__).resolve().parents[2]


def test_defaults_match_the_issue(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in dir(c):
        if name.startswith("ENV_"):
            monkeypatch.delenv(getattr(c, name), raising=False)
    s = Settings()
    assert (s.redis_url, s.queue_name, s.concurrency, s.queue_max, str(s.data_dir)) == (
        "redis://127.0.0.1:6379",
        "preview-jobs",
        2,
        20,
        "data",
    )
    assert (s.api_host, s.api_port, s.metrics_port, s.drain_seconds, s.job_attempts) == (
        "0.0.0.0",
        3000,
        9100,
        25.0,
        3,
    )
    assert s.track == "stable" and s.release == c.RELEASE_LOCAL and s.dlq_name == "preview-jobs-dlq"


def test_env_names_come_from_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(c.ENV_CONCURRENCY, "7")
    monkeypatch.setenv(c.ENV_TRACK, "canary")
    monkeypatch.setenv(c.ENV_RELEASE, "sha256-0123456789ab")
    monkeypatch.setenv(c.ENV_SOURCE_HOSTS, "Assets.Example, 127.0.0.1:8080")
    s = Settings()
    assert s.concurrency == 7 and s.track == "canary" and s.release == "sha256-0123456789ab"
    assert s.allowed_hosts == frozenset({"assets.example", "127.0.0.1:8080"})


def test_redact_url() -> None:
    assert redact_url("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redact_url("redis://user:s3cret@redis/0") == "redis://user:***@redis/0"
    assert redact_url("redis://redis:6379") == "redis://redis:6379"


def test_invalid_settings_exit_2_with_one_line_each() -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_")},  # no unknown-name warnings
        c.ENV_CONCURRENCY: "0",
        c.ENV_TRACK: "blue",
        c.ENV_RELEASE: "r1\n",  # a label value with a newline would break every scrape
        c.ENV_QUEUE_MAX: "many",
        c.ENV_REDIS_URL: "http://user:hunter2-secret@host",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "invalid setting PREVIEW_WORKER_CONCURRENCY='0': Input should be greater than or equal to 1",
        "invalid setting PREVIEW_QUEUE_MAX='many': Input should be a valid integer, "
        "unable to parse string as an integer",
        "invalid setting REDIS_URL=<redacted>: Value error, must be a redis://, rediss://, unix:// or "
        "redis+sentinel:// URL",
        "invalid setting PREVIEW_TRACK='blue': Input should be 'stable' or 'canary'",
        "invalid setting PREVIEW_RELEASE='r1\\n': Value error, must be 1-63 of A-Z a-z 0-9 . _ - starting "
        "with a letter or digit, got 'r1\\n'",
    ]
    assert "hunter2" not in proc.stderr + proc.stdout


def test_an_unknown_preview_variable_is_named_once_with_the_closest_known_one_never_its_value() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_")}
    env |= {"PREVIEW_CONCURRENCY": "abc", "PREVIEW_API_TOKEN": "hunter2-secret-0123", "PREVIEW_ZZZ": "1"}
    example = REPO / "schemas" / "examples" / "minimal.json"
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "validate", str(example)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # a warning, not an error: the command still runs
    assert proc.stderr.splitlines() == [
        "warning: PREVIEW_API_TOKEN is not a setting of the worker and is ignored; "
        "did you mean PREVIEW_API_TOKENS?",
        "warning: PREVIEW_CONCURRENCY is not a setting of the worker and is ignored; "
        "did you mean PREVIEW_WORKER_CONCURRENCY?",
        "warning: PREVIEW_ZZZ is not a setting of the worker and is ignored",
    ]
    assert "hunter2" not in proc.stderr + proc.stdout and "abc" not in proc.stderr


def test_every_declared_preview_variable_is_known() -> None:
    names = {getattr(c, n) for n in dir(c) if n.startswith("ENV_")}
    names |= {env_of(f) for f in Settings.model_fields}
    assert unknown_env(dict.fromkeys(names, "x")) == []
