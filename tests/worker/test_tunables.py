"""worker/tunables.py: one declaration per tunable, its env var, and the generated settings table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from worker import constants as c
from worker.settings import Settings
from worker.tunables import DOC_END, DOC_START, Tunables, env_name, table, to_env

REPO = Path(__file__).resolve().parents[2]


def test_every_tunable_names_its_own_env_var_from_constants() -> None:
    names = {env_name(f) for f in Tunables.model_fields}
    declared = {getattr(c, n) for n in dir(c) if n.startswith("ENV_")}
    assert len(names) == len(Tunables.model_fields) and names <= declared
    assert not names & c.SECRET_ENV_VARS  # a tunable goes into a ConfigMap: never a secret


def test_the_worker_reads_each_tunable_from_its_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_name("queue_max"), "77")
    monkeypatch.setenv(env_name("s3_region"), "eu-central-1")
    s = Settings()
    assert (s.queue_max, s.s3_region) == (77, "eu-central-1")
    assert to_env(s)[c.ENV_QUEUE_MAX] == "77"  # Settings is a Tunables: it renders the same env
    monkeypatch.setenv(env_name("concurrency"), "257")
    with pytest.raises(ValidationError, match=c.ENV_CONCURRENCY):
        Settings()


def test_the_stack_keys_are_camel_case_and_unknown_keys_are_refused() -> None:
    t = Tunables.model_validate({"queueMax": 5, "keepDlqCount": 0})
    assert (t.queue_max, t.keep_dlq_count) == (5, 0)
    with pytest.raises(ValidationError, match="queueMaxx"):
        Tunables.model_validate({"queueMaxx": 5})


def test_the_settings_doc_holds_the_current_table() -> None:
    doc = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    generated = doc.partition(DOC_START + "\n")[2].partition(DOC_END)[0]
    assert generated == table(), "docs/settings.md is stale: run `python -m worker.tunables --write`"
    for name in Tunables.model_fields:
        assert f"| `{env_name(name)}` |" in generated
    assert "\\|" in generated  # the S3 prefix pattern's alternation, escaped for the table


def _tunables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.tunables", *args], cwd=REPO, capture_output=True, text=True, timeout=30
    )


def test_the_generator_writes_only_when_asked_and_checks_on_demand(tmp_path: Path) -> None:
    current = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    doc = tmp_path / "settings.md"
    stale = current.replace("| `queueMax` |", "| `queueMaxOld` |")
    doc.write_text(stale, encoding="utf-8")
    for no_mode in ((), ("--help",), (str(doc),)):
        proc = _tunables(*no_mode)
        assert doc.read_text(encoding="utf-8") == stale  # --help used to rewrite the doc
    usage = "python -m worker.tunables: give --write or --check"
    assert (proc.returncode, proc.stderr.splitlines()[-1]) == (2, usage)
    assert _tunables("--help").returncode == 0
    checked = _tunables("--check", str(doc))
    assert checked.returncode == 1 and doc.read_text(encoding="utf-8") == stale
    assert checked.stderr.startswith(f"{doc} is stale: run `python -m worker.tunables --write`\n")
    assert "\n-| `queueMaxOld` |" in checked.stderr and "\n+| `queueMax` |" in checked.stderr
    assert _tunables("--write", str(doc)).returncode == 0
    assert doc.read_text(encoding="utf-8") == current
    assert (_tunables("--check", str(doc)).returncode, _tunables("--check").returncode) == (0, 0)
