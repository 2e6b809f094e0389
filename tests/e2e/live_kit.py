"""Compare what the program declares with what the API server holds after a real ``pulumi up``.

:func:`declared` runs the program for a stack file under Pulumi's mocks (the same code
as ``python -m infra snapshot``); :func:`mismatches` walks one declared object and lists
every field whose live value differs. The live object may carry more (defaults, status,
Pulumi's annotations); everything declared must be there with the same value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from e2e_kit import kubectl_json, pulumi_run

from infra.tools.snapshot.harness import MASK, run_program


def declared(project: Path, stack: str, environ: dict[str, str]) -> list[dict[str, Any]]:
    """The Kubernetes objects ``stack`` in ``project`` declares, from its real (decrypted) config.

    The engine's own ``pulumi config --show-secrets`` supplies the values, so values
    derived from secrets (the pods' ``checksum/secret``) are the ones ``up`` deployed;
    the secrets themselves stay masked in what is returned.
    """
    shown = json.loads(pulumi_run(["config", "--stack", stack, "--json", "--show-secrets"], environ, project))
    config = {key: entry.get("objectValue", entry["value"]) for key, entry in shown.items()}
    secret_keys = [key for key, entry in shown.items() if entry.get("secret")]
    return list(run_program(stack, config, secret_keys).objects())


def resource_name(manifest: dict[str, Any]) -> str:
    """What ``kubectl get`` calls a kind: ``deployment.apps``, ``prometheusrule.monitoring.coreos.com``."""
    group = manifest["apiVersion"].rpartition("/")[0]
    kind = manifest["kind"].lower()
    return f"{kind}.{group}" if group else kind


def live(environ: dict[str, str], manifest: dict[str, Any]) -> dict[str, Any]:
    """The API server's copy of ``manifest``'s object."""
    meta = manifest["metadata"]
    scope = ["-n", meta["namespace"]] if "namespace" in meta else []
    found: dict[str, Any] = kubectl_json(environ, *scope, "get", resource_name(manifest), meta["name"])
    return found


def _empty(value: Any) -> bool:
    return value in ({}, [], None)


def mismatches(want: Any, got: Any, path: str = "") -> list[str]:
    """Every declared field (``want``) that the live object (``got``) lacks or holds differently."""
    if isinstance(want, str) and want == MASK:
        return []  # a secret value: never rendered, so not comparable
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [] if _empty(want) and got is None else [f"{path}: declared an object, live {got!r}"]
        problems: list[str] = []
        for key, value in want.items():
            if key not in got:
                if not _empty(value):  # the API server drops empty lists and objects
                    problems.append(f"{path}.{key}: declared {value!r}, missing live")
                continue
            problems += mismatches(value, got[key], f"{path}.{key}")
        return problems
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: declared {len(want)} items {want!r}, live {got!r}"]
        return [
            p
            for i, (w, g) in enumerate(zip(want, got, strict=True))
            for p in mismatches(w, g, f"{path}[{i}]")
        ]
    return [] if want == got else [f"{path}: declared {want!r}, live {got!r}"]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The first container of a live Deployment's pod template."""
    first: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return first


def available(deployment: dict[str, Any]) -> bool:
    """Whether a live Deployment reports Available=True."""
    conditions = deployment.get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)
