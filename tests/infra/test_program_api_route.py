"""``api.exposure``: the route to the job API from outside the cluster, as the real program declares
it under Pulumi's mocks (an Ingress in the committed staging and prod stacks, an HTTPRoute as a
variant), each valid against its schema and pointing at the API's Service port."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from test_k8s_schemas import KUBERNETES_VERSION, validate_custom

from infra.config.model import ConfigError, load_stack_file
from infra.tools.snapshot.harness import ROOT, ProgramRun, run_program
from worker import constants as c

API = "preview-worker-api"
GATEWAY = {"name": "public", "namespace": "gateways", "sectionName": "https"}


def service_port(run: ProgramRun) -> dict[str, Any]:
    (port,) = run.object("Service", API)["spec"]["ports"]
    return dict(port)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_committed_stacks_expose_only_the_api_routes_through_an_ingress_with_tls(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run, exposure = stack_runs[stack], load_stack_file(ROOT / f"Pulumi.{stack}.yaml").api.exposure
    assert exposure is not None
    ingress = run.object("Ingress", API)
    kubernetes_validate.validate(ingress, KUBERNETES_VERSION, strict=True)
    spec = ingress["spec"]
    assert spec["tls"] == [{"hosts": [exposure.host], "secretName": exposure.tls_secret}]
    assert spec["ingressClassName"] == exposure.class_name
    ((rule,),) = [[r for r in spec["rules"] if r["host"] == exposure.host]]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == (c.API_PATH_PREFIX, "Prefix")  # not /metrics
    assert path["backend"] == {"service": {"name": API, "port": {"name": service_port(run)["name"]}}}
    assert ingress["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    assert run.resource("Ingress", API).type == "kubernetes:networking.k8s.io/v1:Ingress"


def test_the_dev_stack_declares_no_route(stack_runs: dict[str, ProgramRun]) -> None:
    assert stack_runs["dev"].objects("Ingress") == [] and stack_runs["dev"].objects("HTTPRoute") == []


def test_an_httproute_attaches_to_the_named_gateway_and_the_api_service() -> None:
    api = load_stack_file(ROOT / "Pulumi.prod.yaml").api.model_dump(by_alias=True, exclude_none=True)
    api["exposure"] = {"kind": "httproute", "host": "preview-api.example.com", "parentRef": GATEWAY}
    run = run_program("prod", overrides={"api": api})
    assert run.objects("Ingress") == []
    route = run.object("HTTPRoute", API)
    validate_custom(route)  # the vendored Gateway API v1.3.0 CRD's schema, strictly
    spec = route["spec"]
    assert spec["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", **GATEWAY}]
    assert spec["hostnames"] == ["preview-api.example.com"]
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": c.API_PATH_PREFIX}}]
    assert rule["backendRefs"] == [{"name": API, "port": service_port(run)["port"]}]


@pytest.mark.parametrize(
    ("exposure", "problem"),
    [
        ({"kind": "ingress", "host": "preview-api.example.com"},
         "api.exposure.tlsSecret: required for an ingress: the Secret holding its TLS certificate"),
        ({"kind": "loadbalancer", "host": "a.example.com"},
         "api.exposure.kind: must be one of 'ingress' or 'httproute', got 'loadbalancer'"),
        ({"kind": "ingress", "host": "Preview.example.com", "tlsSecret": "t"},
         "api.exposure.host: must be a fully qualified lowercase host name like preview-api.example.com, "
         "got 'Preview.example.com'"),
        ({"kind": "ingress", "host": "a.example.com\n", "tlsSecret": "t"},
         "api.exposure.host: must be a fully qualified lowercase host name like preview-api.example.com, "
         "got 'a.example.com\\n'"),
        ({"kind": "ingress", "host": "a.example.com", "tlsSecret": "Bad_Name"},
         "api.exposure.tlsSecret: must be a Kubernetes object name (DNS-1123 subdomain), got 'Bad_Name'"),
        ({"kind": "ingress", "host": "a.example.com", "tlsSecret": "t", "parentRef": GATEWAY},
         "api.exposure.parentRef: only for kind httproute (an Ingress has a className)"),
        ({"kind": "httproute", "host": "a.example.com"},
         "api.exposure.parentRef: required for an httproute: {name, namespace} of its Gateway"),
        ({"kind": "httproute", "host": "a.example.com", "parentRef": GATEWAY, "tlsSecret": "t"},
         "api.exposure.tlsSecret: not for an httproute: the Gateway's HTTPS listener names the certificate"),
        ({"kind": "httproute", "host": "a.example.com", "parentRef": {"name": "gw"}},
         "api.exposure.parentRef.namespace: required"),
        ({"kind": "ingress", "host": "a.example.com", "tlsSecret": "t", "tls": "t"},
         "api.exposure.tls: unknown key"),
    ],
)  # fmt: skip
def test_a_bad_exposure_is_a_config_error_naming_the_key(exposure: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        run_program("prod", overrides={"api": {"exposure": exposure}})
    assert problem in info.value.problems
