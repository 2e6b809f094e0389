"""The route to the job API from outside the cluster (``api.exposure``): an Ingress or an HTTPRoute.

Either sends ``https://<host>/api/preview/…`` to the API's Service (port ``http``) and nothing
else: the API's ``/metrics`` stays inside the cluster. An Ingress terminates TLS with the Secret
``tlsSecret`` names; an HTTPRoute attaches to a Gateway whose listener terminates it.
"""

from __future__ import annotations

from infra.config.model import StackConfig
from infra.config.sections.api_exposure import ApiExposure
from infra.manifests.common import API_NAME, Manifest, metadata
from infra.manifests.job_api import api_labels
from worker import constants as c

#: pulumi-kubernetes waits for an Ingress until its controller publishes an address, which some
#: controllers never do (and none does before it admits the route): ``pulumi up`` does not wait on
#: the controller; ``python -m infra verify --api https://<host>`` proves the route end to end.
ANNOTATION_SKIP_AWAIT = "pulumi.com/skipAwait"
#: The Gateway API version the HTTPRoute is declared in (GA since Gateway API v1.0).
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"


def api_route(cfg: StackConfig, instance: str) -> Manifest | None:
    """The Ingress or HTTPRoute ``api.exposure`` asks for; None without one."""
    exposure = cfg.api.exposure
    if exposure is None:
        return None
    skip_await = {ANNOTATION_SKIP_AWAIT: "true"}
    meta = metadata(API_NAME, cfg.namespace, api_labels(instance), annotations=skip_await)
    if exposure.kind == "ingress":
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
                "spec": _ingress_spec(exposure)}  # fmt: skip
    return {"apiVersion": GATEWAY_API_VERSION, "kind": "HTTPRoute", "metadata": meta,
            "spec": _route_spec(exposure)}  # fmt: skip


def _ingress_spec(exposure: ApiExposure) -> Manifest:
    backend = {"service": {"name": API_NAME, "port": {"name": c.API_PORT_NAME}}}
    spec: Manifest = {
        "tls": [{"hosts": [exposure.host], "secretName": exposure.tls_secret}],
        "rules": [
            {
                "host": exposure.host,
                "http": {"paths": [{"path": c.API_PATH_PREFIX, "pathType": "Prefix", "backend": backend}]},
            }
        ],
    }
    if exposure.class_name:
        spec["ingressClassName"] = exposure.class_name
    return spec


def _route_spec(exposure: ApiExposure) -> Manifest:
    parent = exposure.parent_ref
    assert parent is not None  # ApiExposure requires it for an httproute
    ref = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": parent.name,
           "namespace": parent.namespace}  # fmt: skip
    if parent.section_name:
        ref["sectionName"] = parent.section_name
    return {
        "parentRefs": [ref],
        "hostnames": [exposure.host],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": c.API_PATH_PREFIX}}],
                "backendRefs": [{"name": API_NAME, "port": c.API_PORT}],
            }
        ],
    }
