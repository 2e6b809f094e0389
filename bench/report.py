"""The benchmark's outputs: a table on stdout, a JSON document and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import preview_report


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when either is missing or ``b`` is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def table(results: dict[str, Any]) -> str:
    """Human-readable summary of ``results`` (what ``python -m bench`` prints)."""
    lines: list[str] = []
    tp = results.get("throughput")
    if tp:
        impls = list(tp["median"])
        lines.append(f"No-op throughput, jobs/s (median of {tp['rounds']}, {tp['jobs']} jobs per run)")
        lines.append("  conc  " + "".join(f"{i:>14}" for i in impls) + "   fast/node  plain/node")
        for conc in tp["median"][impls[0]]:
            row = "".join(f"{tp['median'][i][conc]:>14.0f}" for i in impls)
            lines.append(
                f"  {conc:>4}  {row}   {_fmt(tp['ratios']['fast/node'][conc]):>9}  "
                f"{_fmt(tp['ratios']['plain/node'][conc]):>10}"
            )
        lines.append("  peak RSS (KiB): " + ", ".join(f"{k} {v}" for k, v in tp["rss_peak_kb"].items()))
    run = results.get("run")
    if run:
        lines += _run_rows(run)
    cl = results.get("clients")
    if cl:
        lines.append(
            f"Redis clients: EVALSHA calls/s from {cl['concurrency']} tasks (median of {cl['rounds']}, "
            f"{cl['calls']} calls per run)"
        )
        for client, value in cl["median"].items():
            ratio = cl["ratios"].get(f"{client}/pipe")
            lines.append(f"  {client:>10}  {value:>10.0f}" + (f"   {_fmt(ratio)} of pipe" if ratio else ""))
    lv = results.get("levers")
    if lv:
        lines.append(f"Levers at concurrency {lv['concurrency']}, jobs/s (median of {lv['rounds']})")
        for impl, value in lv["median"].items():
            lines.append(f"  {impl:>14}  {value[str(lv['concurrency'])]:>8.0f}")
    lat = results.get("latency")
    if lat:
        lines.append(
            f"Enqueue-to-start latency at {lat['rate']:.0f} jobs/s, concurrency {lat['concurrency']} (ms)"
        )
        for impl in lat["p50_ms"]:
            lines.append(f"  {impl:>14}  p50 {lat['p50_ms'][impl]:>7.1f}  p99 {lat['p99_ms'][impl]:>7.1f}")
    pv = results.get("preview")
    if pv:
        lines += preview_report.rows(pv)
    rd = results.get("redis")
    if rd:
        lines += _redis_rows(rd)
    rb = results.get("redis_backoff")
    if rb:
        lines += _backoff_rows(rb)
    fo = results.get("failover")
    if fo:
        med = fo["median"]
        lines.append(
            f"Redis failover, master SIGKILLed mid-drain: seconds to the first job completed on the "
            f"promoted master (median of {fo['rounds']}, {fo['jobs']} jobs)"
        )
        for impl in ("worker", "node"):
            first, promoted = med[impl]["first_job_s"], med[impl]["promotion_s"]
            lines.append(f"  {impl:>6}  first job {first:5.2f}  (promotion {promoted:5.2f})")
        lines.append(f"  worker/node {_fmt(fo['ratio_worker_node'])} (lower is faster)")
    pg = results.get("program")
    if pg:
        lines.append("Pulumi program under mocks (s), target: first evaluation < 1 s")
        lines.append("     stack  import  first-eval   cold  warm-eval")
        for stack, r in pg.items():
            if "error" in r:
                lines.append(f"  {stack:>8}  error: {r['error']}")
            else:
                lines.append(
                    f"  {stack:>8}  {r['import_s']:6.2f}  {r['first_s']:10.2f}  {r['cold_s']:5.2f}  "
                    f"{r['warm_s']:9.2f}"
                )
    eng = results.get("engine")
    if eng:
        med, met = eng["median_s"], eng["met"]
        lines.append(f"Real engine, dev stack on the local cluster (s, median of {eng['rounds']})")
        for name in ("preview", "up", "preview_no_changes", "destroy"):
            target = eng["targets_s"].get(name)
            verdict = f"  target < {target:.0f} s: {'met' if met[name] else 'MISSED'}" if target else ""
            lines.append(f"  {name:>18}  {med[name]:6.1f}{verdict}")
    sc = results.get("scaling")
    if sc:
        med = sc["median"]
        lines.append(
            f"Backlog to scale-out on the local cluster: {sc['backlog']} waiting jobs, HPA wanting "
            f"{sc['want']} pods (s, median of {sc['rounds']})"
        )
        lines.append(f"  prometheus-adapter  {med['adapter']['scale_out_s']:6.1f}")
        lines.append(
            f"                keda  {med['keda']['scale_out_s']:6.1f}  "
            f"(from 0 pods, one job to the first: {med['keda']['wake_s']:.1f})"
        )
        lines.append(f"  keda/adapter {_fmt(sc['ratio_keda_adapter'])} (lower is faster)")
    rb = results.get("rollback")
    if rb:
        verdict = "met" if rb["met"] else "MISSED"
        lines.append(
            f"Break-glass rollback --apply to the previous digest Available (s, median of {rb['rounds']})"
        )
        lines.append(f"  {rb['median_s']:6.1f}  target < {rb['target_s']:.0f} s: {verdict}")
    return "\n".join(lines)


def _run_rows(run: dict[str, Any]) -> list[str]:
    med, ratios = run["median"], run["ratios"]
    lines = [
        f"python -m worker run, dryRun jobs/s from the jobs' own stamps (median of {run['rounds']}, "
        f"{run['jobs']} jobs per run)",
        "  conc        worker          node   worker/node     worker-2p       node-2p   2p/2p",
    ]
    for conc in med["node"]:
        two = ratios["worker-2p/node-2p"].get(conc)
        pair = f"{med['worker-2p'][conc]:>12.0f}  {med['node-2p'][conc]:>12.0f}" if two else " " * 26
        lines.append(
            f"  {conc:>4}  {med['worker'][conc]:>12.0f}  {med['node'][conc]:>12.0f}   "
            f"{_fmt(ratios['worker/node'][conc]):>11}  {pair}   {_fmt(two) if two else '':>5}"
        )
    lines.append(
        "  peak RSS per process (KiB): " + ", ".join(f"{k} {v}" for k, v in run["rss_peak_kb"].items())
    )
    return lines


def _redis_rows(rd: dict[str, Any]) -> list[str]:
    mib = 2**20
    lines = [
        f"Redis memory over {rd['jobs']} jobs (half completed, half dead-lettered; "
        f"{rd['inline_bytes'] // 1024} KiB inline), after each batch of {rd['batch']}",
        "     jobs  used MiB  completed  failed    dlq",
    ]
    for s in rd["samples"]:
        used = (s["used_memory"] - rd["baseline_bytes"]) / mib
        lines.append(f"  {s['jobs']:>7}  {used:8.1f}  {s['completed']:>9}  {s['failed']:>6}  {s['dlq']:>5}")
    growth = rd["second_half_growth"]
    lines.append(
        f"  second half: {_fmt(growth)} of the half-way memory; peak {rd['peak_bytes'] / mib:.1f} MiB, "
        f"worst case at these caps {rd['worst_case_bytes'] / mib:.1f} MiB, "
        f"budget {rd['budget_bytes'] / mib:.0f} MiB"
    )
    return lines


def _backoff_rows(rb: dict[str, Any]) -> list[str]:
    mib = 2**20
    verdict = "PASS" if rb["within_budget"] else "FAIL"
    return [
        f"Redis memory with long backoffs: {rb['jobs']} jobs, {rb['failing']} failing transiently "
        f"(503, {rb['backoff_ms'] / 1000:g} s backoff), queue max {rb['queue_max']}, in {rb['seconds']} s",
        f"  queue full (429) {rb['refused_429']} times; at most {rb['delayed_max']} delayed, "
        f"{rb['unfinished_max']} unfinished; kept {rb['kept']}",
        f"  {verdict} peak <= budget: peak {rb['peak_bytes'] / mib:.1f} MiB, worst case at these "
        f"caps {rb['worst_case_bytes'] / mib:.1f} MiB, budget {rb['budget_bytes'] / mib:.0f} MiB",
    ]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.png`` into ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    png_path = out_dir / "results.png"
    chart(results, png_path)
    return json_path, png_path


def chart(results: dict[str, Any], path: Path) -> None:
    """A bar chart per section: throughput by concurrency, latency, preview, program evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4.5))
    tp = results.get("throughput")
    if tp:
        impls = list(tp["median"])
        concs = list(tp["median"][impls[0]])
        width = 0.8 / len(impls)
        for n, impl in enumerate(impls):
            axes[0].bar(
                [i + n * width for i in range(len(concs))],
                [tp["median"][impl][c] for c in concs],
                width,
                label=impl,
            )
        axes[0].set_xticks([i + 0.4 - width / 2 for i in range(len(concs))], [f"c={c}" for c in concs])
        axes[0].set_title("no-op jobs/s (median)")
        axes[0].legend()
    lat = results.get("latency")
    if lat:
        impls = list(lat["p50_ms"])
        axes[1].bar([i - 0.2 for i in range(len(impls))], [lat["p50_ms"][i] for i in impls], 0.4, label="p50")
        axes[1].bar([i + 0.2 for i in range(len(impls))], [lat["p99_ms"][i] for i in impls], 0.4, label="p99")
        axes[1].set_xticks(range(len(impls)), impls)
        axes[1].set_title("enqueue-to-start latency, ms")
        axes[1].legend()
    pv = results.get("preview")
    if pv:
        preview_report.chart(axes[2], pv)
    pg = results.get("program")
    if pg:
        ok = {s: r for s, r in pg.items() if "error" not in r}
        axes[3].bar(
            [i - 0.2 for i in range(len(ok))],
            [r["first_s"] for r in ok.values()],
            0.4,
            label="first",
        )
        axes[3].bar([i + 0.2 for i in range(len(ok))], [r["warm_s"] for r in ok.values()], 0.4, label="warm")
        axes[3].set_xticks(range(len(ok)), list(ok))
        axes[3].set_title("Pulumi program eval under mocks, s")
        axes[3].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
