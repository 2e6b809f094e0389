"""``python -m infra snapshot --stack S --out DIR``: a stack's Kubernetes objects as YAML files.

Runs the real program (``__main__.py``) under Pulumi's mocks, the same code path
as ``pulumi preview``, and writes one file per object, ``NN-<kind>-<name>.yaml``
in apply order (so ``kubectl apply -f DIR`` creates the namespace first).
Secret values are written as ``<secret>``; nothing secret leaves Pulumi.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from infra.errors import InfraError
from infra.tools.snapshot.harness import ROOT, ProgramRun, run_program

#: Apply order: what others reference comes first.
KIND_ORDER = [
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Secret",
    "SecretStore",
    "ExternalSecret",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
    "ScaledObject",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ServiceMonitor",
    "PrometheusRule",
]


def ordered(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects by KIND_ORDER, then name: stable across runs (registration order is async)."""

    def key(m: dict[str, Any]) -> tuple[int, str]:
        kind = m["kind"]
        return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), m["metadata"]["name"])

    return sorted(objects, key=key)


def file_name(index: int, manifest: dict[str, Any]) -> str:
    """``03-configmap-preview-worker-config.yaml``."""
    return f"{index:02d}-{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"


def write(run: ProgramRun, out: Path) -> list[Path]:
    """Write every object of ``run`` into ``out`` (replacing earlier renders); return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("[0-9][0-9]-*.yaml"):
        old.unlink()
    written = []
    for index, manifest in enumerate(ordered(run.objects()), start=1):
        path = out / file_name(index, manifest)
        path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written


def parser() -> argparse.ArgumentParser:
    """The command line (the workflow tests parse pr.yml's invocation with it)."""
    top = argparse.ArgumentParser(prog="python -m infra snapshot", description=__doc__.splitlines()[0])
    top.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml")
    top.add_argument("--out", required=True, type=Path, help="directory to write the YAML files into")
    return top


def main(argv: list[str]) -> int:
    """Entry point of ``python -m infra snapshot``."""
    args = parser().parse_args(argv)
    if not (ROOT / f"Pulumi.{args.stack}.yaml").is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
        print(f"render: no stack file Pulumi.{args.stack}.yaml (stacks: {', '.join(known)})", file=sys.stderr)
        return 2
    try:
        run = run_program(args.stack)
    except InfraError as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 1
    paths = write(run, args.out)
    print(f"wrote {len(paths)} objects for stack {args.stack} to {args.out}")
    return 0
