"""``python -m bench``: the throughput benchmark of issue 7 (table on stdout, JSON + PNG chart).

Sections: no-op throughput against Node.js BullMQ 6.7 at several concurrencies (runs
interleaved, medians), the levers one by one, enqueue-to-start latency, preview
throughput per kind of upload against a pyvips service, ``vipsthumbnail`` and ``pdftoppm`` on
two cores at equal output quality, Pulumi program evaluation per stack,
the real engine's ``pulumi preview``/``up`` of the dev stack on a local cluster, backlog to
scale-out on a local cluster (prometheus-adapter against KEDA), and Redis memory over 20,000
jobs with the default retention. ``--only rollback`` (not in the default run) times a
break-glass ``release rollback --apply`` until the previous digest is live and Available.
``--quick`` runs every default section at small sizes (the smoke test uses it).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import (
    backoff_suite,
    client_suite,
    engine_suite,
    failover_suite,
    local_engine,
    noop,
    preview_suite,
    program_suite,
    queue_suite,
    redis_suite,
    report,
    rollback_suite,
    run_suite,
    scaling_suite,
)
from bench.preview_corpus import KINDS, parse_kinds
from bench.redis_kit import BenchRedis

SECTIONS = (
    "throughput", "run", "clients", "levers", "latency", "preview", "redis", "failover", "program", "engine",
    "scaling", "rollback",
)  # fmt: skip
#: Sections that run only when named in ``--only`` (each starts a local cluster of its own).
OPT_IN = ("rollback",)
LEVERS = list(noop.IMPLS)  # every implementation: plain, then fast with each lever off, then fast


def parse(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    p.add_argument(
        "--rounds",
        type=int,
        help="interleaved rounds per measurement (default 5, or 3 for the long sections: run, clients, "
        "latency, preview and the cluster ones; quick 1)",
    )  # fmt: skip
    p.add_argument(
        "--jobs",
        type=int,
        help="no-op jobs per run (default 10000: long enough for Node's JIT to warm up; quick 100)",
    )
    p.add_argument("--concurrency", default="1,10,50", help="comma-separated concurrencies (default 1,10,50)")
    p.add_argument(
        "--corpus",
        type=int,
        help="preview files per kind (default 8: camera and phone JPEGs, screenshots, transparent PNGs, "
        "animated GIF and WebP, three PDF kinds; quick 1)",
    )
    p.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="preview: comma-separated corpus kinds to run (default all; e.g. pdf-text,pdf-vector,pdf-scan)",
    )
    default = ",".join(s for s in SECTIONS if s not in OPT_IN)
    p.add_argument(
        "--only", default=default, help=f"comma-separated sections of {SECTIONS} (default: all but {OPT_IN})"
    )
    p.add_argument("--out", type=Path, default=Path("bench/results"), help="where results.json/.png go")
    p.add_argument(
        "--cluster", type=Path, metavar="STATE_DIR",
        help="the engine, scaling and rollback sections use the running local cluster of this state folder "
        "(left running) instead of starting one of their own each",
    )  # fmt: skip
    args = p.parse_args(argv)
    #: The long sections' rounds: 3 unless asked for (at least 3 keeps a median of three).
    args.long_rounds = args.rounds or (1 if args.quick else 3)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.jobs = args.jobs or (100 if args.quick else 10000)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if args.corpus is None:
        args.corpus = 1 if args.quick else 8
    args.only = [s.strip() for s in args.only.split(",")]
    unknown = set(args.only) - set(SECTIONS)
    if unknown or args.corpus < 1 or args.rounds < 1 or args.jobs < 1:
        p.error(f"bad --only {sorted(unknown)}" if unknown else "bad --corpus/--rounds/--jobs")
    try:
        args.kinds = parse_kinds(args.kinds)
    except ValueError as err:
        p.error(str(err))
    if args.cluster is not None and local_engine.running_cluster(args.cluster) is None:
        p.error(f"--cluster {args.cluster}: no running local cluster there (`python -m infra local up`)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections; print the table; write JSON and PNG."""
    args = parse(sys.argv[1:] if argv is None else argv)
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": _cpus(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "quick": args.quick,
    }
    with BenchRedis() as redis:
        if "throughput" in args.only:
            print("no-op throughput ...", file=sys.stderr)
            tp = queue_suite.throughput(
                redis, ["plain", "fast", "node"], args.concurrency, args.jobs, args.rounds
            )
            med = tp["median"]
            tp["ratios"] = {
                f"{i}/node": {c: report.ratio(med[i][c], med["node"][c]) for c in med["node"]}
                for i in ("fast", "plain")
            }
            results["throughput"] = tp
        if "run" in args.only:
            print("python -m worker run on dryRun jobs ...", file=sys.stderr)
            jobs = 200 if args.quick else args.jobs
            results["run"] = run_suite.throughput(redis, args.concurrency, jobs, args.long_rounds)
        if "clients" in args.only:
            print("Redis clients, Lua calls from 50 tasks ...", file=sys.stderr)
            calls = 2_000 if args.quick else 50_000
            results["clients"] = client_suite.compare(redis, 50, calls, args.long_rounds)
        if "levers" in args.only:
            print("levers ...", file=sys.stderr)
            conc = max(args.concurrency)
            results["levers"] = {
                **queue_suite.throughput(redis, LEVERS, [conc], args.jobs, args.rounds),
                "concurrency": conc,
            }
        if "latency" in args.only:
            print("latency ...", file=sys.stderr)
            jobs = 50 if args.quick else 500
            results["latency"] = queue_suite.latency(
                redis, ["plain", "fast", "node"], 10, jobs, 100.0, args.long_rounds
            )
        if "preview" in args.only:
            print("preview ...", file=sys.stderr)
            root = preview_suite.corpus(args.corpus)
            rounds = args.long_rounds
            results["preview"] = {
                "per_kind": args.corpus,
                **preview_suite.compare(root, redis, rounds, args.kinds),
            }
        if "redis" in args.only:
            print("redis memory ...", file=sys.stderr)
            jobs, batch = (400, 100) if args.quick else (20_000, 2_000)
            results["redis"] = redis_suite.run(redis, jobs, batch)
            print("redis memory with long backoffs ...", file=sys.stderr)
            jobs, backoff_ms, queue_max = (400, 1_000, 50) if args.quick else (20_000, 10_000, 200)
            results["redis_backoff"] = backoff_suite.run(redis, jobs, backoff_ms, queue_max)
    if "failover" in args.only:
        print("redis failover ...", file=sys.stderr)
        jobs = 2000 if args.quick else 5000
        results["failover"] = failover_suite.compare(jobs, args.long_rounds)
    if "program" in args.only:
        print("program evaluation ...", file=sys.stderr)
        results["program"] = program_suite.run()
    if "engine" in args.only:
        print("pulumi preview/up on a local cluster ...", file=sys.stderr)
        results["engine"] = engine_suite.run(args.long_rounds, args.cluster)
    if "scaling" in args.only:
        print("backlog to scale-out on a local cluster ...", file=sys.stderr)
        results["scaling"] = scaling_suite.run(args.long_rounds, args.cluster)
    if "rollback" in args.only:
        print("break-glass rollback --apply to the previous digest Available ...", file=sys.stderr)
        results["rollback"] = rollback_suite.run(args.long_rounds, args.cluster)
    print(report.table(results))
    json_path, png_path = report.write(results, args.out)
    print(f"wrote {json_path} and {png_path}")
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
