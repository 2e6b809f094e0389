"""``python -m infra verify --stack NAME``: a post-deploy smoke check through the stack's real outputs.

Checks, in order (each a row of the printed table; exit 1 if any fails, 2 on bad usage):

* ``outputs``      the stack's last ``pulumi up`` succeeded and exported what the program exports;
* ``deployments``  each Deployment in the outputs (and the API's) is Available, with at least one
  ready pod, running the digest the outputs pin;
* ``objects``      the HPAs, the PodDisruptionBudget, the ServiceMonitors and the PrometheusRule exist;
* ``api health``   ``GET /api/preview/worker/health`` answers the documented document, healthy;
* ``worker ready`` a worker's ``/readyz`` says ready;
* ``dry run``      a ``dryRun`` job enqueued through the API (with the bearer token in
  ``$PREVIEW_API_TOKEN``, or the variable ``--token-env`` names) completes;
* ``metrics``      the worker's ``preview_worker_job_outcomes_total`` moved by that job.

The cluster is read with ``kubectl`` (``KUBECONFIG`` as for ``pulumi``); the stack's outputs
through the Automation API, with the backend and passphrase the environment selects. The API
and the worker are reached at ``--api`` and ``--worker`` (a port-forward, an ingress, or the
host-run processes of the local demo).
"""

from __future__ import annotations

import argparse
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


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(
            f"must be an http(s) base URL like http://127.0.0.1:8080, got {text!r}"
        )
    return text.rstrip("/")


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m infra verify", description=__doc__.split("\n")[0])
    p.add_argument("--stack", required=True)
    p.add_argument("--api", required=True, type=_url, metavar="URL", help="the job API's base URL")
    p.add_argument(
        "--worker", required=True, type=_url, metavar="URL", help="a worker's health/metrics base URL"
    )
    p.add_argument(
        "--token-env",
        default="PREVIEW_API_TOKEN",
        metavar="NAME",
        help="environment variable holding a bearer token of the API (default PREVIEW_API_TOKEN)",
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds the dry-run job may take (default 60)"
    )
    p.add_argument("--root", type=Path, default=None, help="the project root (default: found from cwd)")
    return p


def main(argv: list[str]) -> int:
    """Entry point for ``python -m infra verify``."""
    args = parser().parse_args(argv)
    root = (args.root or find_root(Path.cwd())).resolve()
    token = os.environ.get(args.token_env, "")  # from the environment, never the command line
    target = Target(args.stack, root, args.api, args.worker, args.timeout, {}, token)
    rows = run_checks(target)
    print(table(rows))
    failed = [r.check for r in rows if not r.ok]
    if failed:
        print(f"verify --stack {args.stack}: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"verify --stack {args.stack}: all {len(rows)} checks passed")
    return 0
