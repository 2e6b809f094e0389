"""Every rendered object against a pinned Kubernetes OpenAPI schema (strict: unknown fields
fail) and every custom resource against its vendored CRD's schema (also strict)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from conftest import STACKS

from infra.tools.snapshot.harness import ProgramRun

KUBERNETES_VERSION = "1.34.0"  # the local cluster runs Kubernetes v1.34.x
CRD_DIR = Path(__file__).resolve().parents[2] / "infra" / "crds"


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → openAPIV3Schema, for every version served by a vendored CRD."""
    schemas = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def strict(schema: Any) -> Any:
    """Close every object schema that lists its properties, as `kubectl --validate=strict` does."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


CRDS = crd_schemas()


def validate_custom(obj: dict[str, Any]) -> None:
    schema = strict(CRDS[(obj["apiVersion"], obj["kind"])])
    schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta is checked by the API server
    jsonschema.Draft7Validator(schema).validate(obj)


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_is_valid(stack_runs: dict[str, ProgramRun], stack: str) -> None:
    custom = 0
    for obj in stack_runs[stack].objects():
        if (obj["apiVersion"], obj["kind"]) in CRDS:
            validate_custom(obj)
            custom += 1
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert custom >= 2  # ServiceMonitor + PrometheusRule (+ ExternalSecret)


def test_vendored_crds_cover_what_the_program_declares(stack_runs: dict[str, ProgramRun]) -> None:
    kinds = {(o["apiVersion"], o["kind"]) for run in stack_runs.values() for o in run.objects()}
    assert {
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("external-secrets.io/v1", "ExternalSecret"),
    } <= kinds & set(CRDS)


def test_strict_validation_rejects_an_unknown_field(stack_runs: dict[str, ProgramRun]) -> None:
    deployment = stack_runs["prod"].object("Deployment", "preview-worker-stable")
    bad = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)
    monitor = stack_runs["prod"].object("ServiceMonitor", "preview-worker")
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        validate_custom({**monitor, "spec": {**monitor["spec"], "intervall": "30s"}})
    rule = stack_runs["prod"].object("PrometheusRule", "preview-worker")
    broken = {**rule, "spec": {"groups": [{"name": "g", "rules": [{"alert": "A"}]}]}}
    with pytest.raises(jsonschema.ValidationError, match="expr"):
        validate_custom(broken)


def test_keda_mode_scaled_objects_match_the_vendored_crd() -> None:
    from infra.tools.snapshot.harness import run_program

    keda = {"prometheusUrl": "http://prometheus.monitoring.svc:9090", "scaleToZero": True}
    run = run_program(
        "staging", overrides={"autoscaling": {"provider": "keda", "queueDepthTarget": 50, "keda": keda}}
    )
    scaled = run.objects("ScaledObject")
    assert len(scaled) == 2  # stable and canary
    for obj in scaled:
        validate_custom(obj)
    with pytest.raises(jsonschema.ValidationError, match="pollingIntervall"):
        validate_custom({**scaled[0], "spec": {**scaled[0]["spec"], "pollingIntervall": 5}})
