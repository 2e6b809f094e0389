"""docs/metrics.md is generated from worker/metrics.py (``python -m worker.metrics_doc``) and kept current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from worker import constants as c
from worker.metrics import ApiMetrics, Metrics
from worker.metrics_doc import DOC_PATH, exposed_name, label_names, render

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "worker.metrics_doc", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def test_the_doc_is_current() -> None:
    result = run("--check")
    assert result.returncode == 0, result.stderr
    assert DOC_PATH.read_text(encoding="utf-8") == render()


def test_every_declared_series_has_a_row_with_its_type_and_labels() -> None:
    doc = render()
    for family in (*Metrics(c.TRACK_STABLE).declared, *ApiMetrics(c.TRACK_STABLE).declared):
        (meta,) = family.describe()
        labels = ", ".join(f"`{label}`" for label in label_names(family))
        assert f"| `{exposed_name(family)}` | {meta.type} | {labels} | {meta.documentation} |" in doc
        assert {c.LABEL_TRACK, c.LABEL_RELEASE} <= set(label_names(family))
    for name in (c.METRIC_JOBS_TAKEN, c.METRIC_JOBS_IN_FLIGHT, c.METRIC_API_REQUESTS, c.METRIC_QUEUE_DEPTH):
        assert f"`{name}`" in doc


def test_a_stale_doc_fails_with_a_diff_and_write_fixes_it(tmp_path: Path) -> None:
    stale = tmp_path / "metrics.md"
    stale.write_text(render().replace(c.METRIC_JOBS_IN_FLIGHT, "preview_worker_renamed_away"))
    result = run("--check", str(stale))
    assert result.returncode == 1
    assert "is stale: run `python -m worker.metrics_doc --write`" in result.stderr
    assert f"+| `{c.METRIC_JOBS_IN_FLIGHT}`" in result.stderr
    assert run("--write", str(stale)).returncode == 0
    assert run("--check", str(stale)).returncode == 0
    missing = run("--check", str(tmp_path / "nope.md"))
    assert missing.returncode == 1 and "nope.md" in missing.stderr and "Traceback" not in missing.stderr
