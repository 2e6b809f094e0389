"""``python -m infra verify --stack NAME``: a post-deploy smoke check through what a CI runner reaches.

Checks, in order (each a row of the printed table; exit 1 if any fails, 2 on bad usage):

* ``cluster``      the stack file's ``cluster`` binding (kubeconfig, context) reaches the cluster
  its ``identity`` names, as ``pulumi up`` checks it;
* ``outputs``      the stack's last ``pulumi up`` succeeded and exported what the program exports;
* ``deployments``  each Deployment in the outputs (and the API's) is Available, with ready pods
  as the API server counts them, running the digest the outputs pin;
* ``objects``      the HPAs, the PodDisruptionBudget, the ServiceMonitors and the PrometheusRule exist;
* ``api health``   the job API's health document has the documented shape and says healthy;
* ``queue``        the API's queue metrics (a ``read`` token) count every state;
* ``targets``      Prometheus scrapes the stack's workers, every target up;
* ``dry run``      a ``dryRun`` job enqueued through the API (an ``enqueue`` token) completes;
* ``metrics``      Prometheus counts it: finished jobs, summed over every pod of each track, grew.

A check that needs a failed one is reported as not run. Every failure is a row with its reason
(an unreachable backend too), never a traceback; ``--json`` prints the rows as one JSON document
(its shape is in docs/verify.md). No pod is reached directly: the job API at ``--api`` and
Prometheus at ``--prometheus`` (an ingress, a Gateway route, or a runner inside the network);
the bearer token comes from ``$PREVIEW_API_TOKEN`` (or the variable ``--token-env`` names); the
stack's outputs through the Automation API, with the backend and passphrase the environment selects.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from infra.tools.release.cli import find_root
from infra.tools.verify.checks import Row, Target, run_checks


def table(rows: list[Row]) -> str:
    """The printed result."""
    width = max(len(r.check) for r in rows)
    return "\n".join(f"{'ok  ' if r.ok else 'FAIL'}  {r.check:<{width}}  {r.detail}" for r in rows)


def as_json(stack: str, rows: list[Row]) -> str:
    """The ``--json`` document: ``{"stack", "ok", "failed": [names], "checks": [rows]}``."""
    failed = [r.check for r in rows if not r.ok]
    doc = {"stack": stack, "ok": not failed, "failed": failed, "checks": [r.as_json() for r in rows]}
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(ch.isspace() for ch in text):
        raise argparse.ArgumentTypeError(
            f"must be an http(s) URL like https://preview.example.com, got {text!r}"
        )
    return text.rstrip("/")


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m infra verify", description=__doc__.split("\n")[0])
    p.add_argument("--stack", required=True)
    p.add_argument("--api", required=True, type=_url, metavar="URL", help="the job API's base URL")
    p.add_argument(
        "--prometheus", required=True, type=_url, metavar="URL", help="the Prometheus scraping the stack"
    )
    p.add_argument(
        "--token-env",
        default="PREVIEW_API_TOKEN",
        metavar="NAME",
        help="environment variable holding a bearer token of the API (default PREVIEW_API_TOKEN)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds the dry-run job, then its count in Prometheus, may take (default 60)",
    )
    p.add_argument("--json", action="store_true", help="print the rows as JSON (docs/verify.md)")
    p.add_argument("--root", type=Path, default=None, help="the project root (default: found from cwd)")
    return p


def main(argv: list[str]) -> int:
    """Entry point for ``python -m infra verify``."""
    args = parser().parse_args(argv)
    if not args.timeout > 0:
        parser().error(f"--timeout: must be a positive number of seconds, got {args.timeout:g}")
    root = (args.root or find_root(Path.cwd())).resolve()
    token = os.environ.get(args.token_env, "")  # from the environment, never the command line
    target = Target(args.stack, root, args.api, args.prometheus, args.timeout, token=token)
    rows = run_checks(target)
    print(as_json(args.stack, rows) if args.json else table(rows))
    failed = [r.check for r in rows if not r.ok]
    if failed:
        print(f"verify --stack {args.stack}: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    if not args.json:
        print(f"verify --stack {args.stack}: all {len(rows)} checks passed")
    return 0
