"""Smoke test: ``python -m bench --quick`` runs every section end to end and reports ratios.

Not a timed test: it checks that the benchmark command works (real redis-server, Node.js
BullMQ, vipsthumbnail, pdftoppm, pyvips, the real worker and the Pulumi program) and that its outputs are
complete, not what the numbers are.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import OPT_IN, SECTIONS
from bench.preview_corpus import KINDS

REPO = Path(__file__).resolve().parents[2]

# The engine and scaling sections need a local cluster: their test runs with the end-to-end half,
# on that half's shared cluster (tests/e2e/test_bench_cluster.py); the other sections run here,
# with the rest of the suite.
CLUSTER_SECTIONS = ("engine", "scaling")


def quick_run(out: Path, sections: list[str], *extra: str) -> tuple[str, dict[str, Any]]:
    """``python -m bench --quick`` over ``sections`` (and ``extra`` arguments): stdout and results.json."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--concurrency", "1,10", "--out", str(out),
         "--only", ",".join(sections), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads((out / "results.json").read_text())


@pytest.mark.timeout(900)  # a full (if tiny) benchmark run on a loaded 2-core machine
def test_quick_run_prints_table_and_writes_json_and_chart(tmp_path: Path) -> None:
    for tool in ("redis-server", "node", "vipsthumbnail", "pdftoppm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; the benchmark needs it (deps/apt-*.txt)")
    if not (REPO / "bench" / "node" / "node_modules" / "bullmq").is_dir():
        pytest.fail("bench/node/node_modules is missing: run `npm ci --prefix bench/node` (./dev test does)")
    out = tmp_path / "results"
    sections = [x for x in SECTIONS if x not in OPT_IN and x not in CLUSTER_SECTIONS]
    stdout, results = quick_run(out, sections)
    for heading in (
        "No-op throughput",
        "Redis clients: EVALSHA calls/s from 50 tasks",
        "python -m worker run, dryRun jobs/s from the jobs' own stamps",
        "Levers at concurrency 10",
        "Enqueue-to-start latency",
        "Preview throughput",
        "Redis memory over 400 jobs",
        "Redis memory with long backoffs: 400 jobs",
        "Redis failover, master SIGKILLed mid-drain",
        "Pulumi program under mocks",
    ):
        assert heading in stdout, stdout
    tp = results["throughput"]
    assert set(tp["median"]) == {"plain", "fast", "node"}
    assert set(tp["ratios"]["fast/node"]) == {"1", "10"}
    assert all(r > 0 for r in tp["ratios"]["fast/node"].values())
    assert all(kb > 10_000 for kb in tp["rss_peak_kb"].values())
    run = results["run"]
    assert set(run["median"]) == {"worker", "node", "worker-2p", "node-2p"}
    assert set(run["ratios"]["worker/node"]) == {"1", "10"}
    assert set(run["ratios"]["worker-2p/node-2p"]) == {"10"}
    assert all(r > 0 for r in run["ratios"]["worker/node"].values())
    assert all(kb > 10_000 for kb in run["rss_peak_kb"].values())
    assert set(results["clients"]["median"]) == {"pipe", "redis-py", "glide", "coredis"}
    fo = results["failover"]
    assert set(fo["median"]) == {"worker", "node"} and fo["ratio_worker_node"] > 0
    assert all(0 < m["promotion_s"] <= m["first_job_s"] for m in fo["median"].values())
    assert all(v > 0 for v in results["clients"]["median"].values())
    assert set(results["levers"]["median"]) >= {"plain", "fast", "fast-nofetch", "fast-nopool"}
    assert set(results["latency"]["p99_ms"]) == {"plain", "fast", "node"}
    preview = results["preview"]
    assert set(preview["kinds"]) == set(KINDS) and all(k["files"] == 1 for k in preview["kinds"].values())
    assert all(r["ratio"] > 0 for k in preview["kinds"].values() for r in k["ratios"].values())
    assert preview["worker"]["rss_peak_kb"] > 10_000 and preview["worker"]["render_rss_peak_kb"] > 10_000
    redis = results["redis"]
    assert [s["jobs"] for s in redis["samples"]] == [100, 200, 300, 400]
    assert redis["kept"] == {"completed": 200, "failed": 200, "dlq": 200}  # under the caps: all kept
    assert 0 < redis["peak_bytes"] < redis["worst_case_bytes"] <= redis["budget_bytes"]
    backoff = results["redis_backoff"]  # 400 jobs past a queue max of 50, 40 of them retried after 1 s
    assert backoff["kept"] == {"completed": 360, "failed": 40}  # under the caps: all kept
    assert backoff["refused_429"] > 0 and backoff["delayed_max"] > 0
    assert backoff["unfinished_max"] <= backoff["queue_max"]
    assert 0 < backoff["peak_bytes"] <= backoff["worst_case_bytes"] <= backoff["budget_bytes"]
    assert backoff["within_budget"] and "PASS peak <= budget" in stdout
    assert set(results["program"]) == {"dev", "prod", "staging"}
    assert all("warm_s" in r for r in results["program"].values()), results["program"]
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kinds_narrow_the_preview_section_and_a_bad_kind_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.__main__ import parse

    assert parse([]).kinds == KINDS
    assert parse(["--kinds", "pdf-text, pdf-scan"]).kinds == ("pdf-text", "pdf-scan")
    with pytest.raises(SystemExit) as exited:
        parse(["--kinds", "pdf-scan,pdf-photo"])
    assert exited.value.code == 2
    assert "bad --kinds ['pdf-photo']" in capsys.readouterr().err


def test_rounds_asked_for_are_the_rounds_every_section_runs() -> None:
    from bench.__main__ import parse

    default, asked, quick = parse([]), parse(["--rounds", "7"]), parse(["--quick"])
    assert (default.rounds, default.long_rounds) == (5, 3)  # the long sections default to three
    assert (asked.rounds, asked.long_rounds) == (7, 7)  # not capped at three when asked for
    assert (quick.rounds, quick.long_rounds) == (1, 1)


def test_pdf_cpu_prints_each_pdf_kind_with_both_sides(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import pdf_cpu
    from bench.preview_corpus import PDF_KINDS

    assert pdf_cpu.main(["--rounds", "1", "--corpus", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-4:] == ["kind", "worker", "pdftoppm", "ratio"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == set(PDF_KINDS)
    for kind, worker, reference, ratio in rows.values():
        # The worker's side is its render process's CPU time: far more than none, which is what
        # timing this process alone would see of a render in another.
        assert float(worker) > 5 and float(reference) > 5, kind
        assert ratio.endswith("x") and abs(float(ratio[:-1]) - float(reference) / float(worker)) < 0.01
