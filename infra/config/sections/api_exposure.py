"""The stack config's ``api.exposure`` section: how the job API is reached from outside the cluster.

Optional: without it the API is a ClusterIP Service only (a runner inside the network, or a
port-forward). With it the stack also declares one route to that Service, for the API's routes
only (the path prefix ``/api/preview``; the API's ``/metrics`` stays inside the cluster):

* ``kind: ingress``: a ``networking.k8s.io/v1`` Ingress for ``host``, TLS from the Secret named
  ``tlsSecret`` (in the stack's namespace), handled by the controller of ``className``;
* ``kind: httproute``: a Gateway API ``HTTPRoute`` for ``host``, attached to the Gateway that
  ``parentRef`` names (and its listener ``sectionName``). That Gateway's HTTPS listener
  terminates TLS with its own ``certificateRefs``, so a route has no ``tlsSecret`` and naming
  one is an error, as is ``className`` (the Gateway has its class).

The API's NetworkPolicy admits the controller's (or the Gateway's) pods through
``network.apiIngressNamespace``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import field_validator, model_validator

from infra.config.base_model import Model, cross_field
from infra.config.fields.identifiers import check_dns_label

#: A host name as an Ingress and an HTTPRoute take it: lowercase RFC 1123 labels, at least two.
_HOST = re.compile(r"(?=.{1,253}\Z)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+")
#: A Secret, IngressClass or Gateway name (RFC 1123 subdomain).
_NAME = re.compile(r"(?=.{1,253}\Z)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
KINDS = ("ingress", "httproute")


def _object_name(cls: Any, v: str | None) -> str | None:
    if v is not None and not _NAME.fullmatch(v):
        raise ValueError(f"must be a Kubernetes object name (DNS-1123 subdomain), got {v[:80]!r}")
    return v


class ParentRef(Model):
    """The Gateway an HTTPRoute attaches to: its name, namespace and (optionally) listener."""

    name: str
    namespace: str
    section_name: str | None = None

    _name = field_validator("name")(_object_name)
    _ns = field_validator("namespace")(check_dns_label)

    @field_validator("section_name")
    @classmethod
    def _section(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", v):
            raise ValueError(f"must be a listener name (DNS-1123 label), got {v[:80]!r}")
        return v


class ApiExposure(Model):
    """One route to the job API's Service from outside the cluster (see the module docstring)."""

    kind: Literal["ingress", "httproute"]
    host: str
    tls_secret: str | None = None
    class_name: str | None = None
    parent_ref: ParentRef | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not _HOST.fullmatch(v):
            raise ValueError(
                f"must be a fully qualified lowercase host name like preview-api.example.com, got {v[:80]!r}"
            )
        return v

    _names = field_validator("tls_secret", "class_name")(_object_name)

    @model_validator(mode="after")
    def _per_kind(self) -> ApiExposure:
        problems: list[tuple[str, str]] = []
        if self.kind == "ingress":
            if self.tls_secret is None:
                problems.append(
                    ("tlsSecret", "required for an ingress: the Secret holding its TLS certificate")
                )
            if self.parent_ref is not None:
                problems.append(("parentRef", "only for kind httproute (an Ingress has a className)"))
        else:
            if self.parent_ref is None:
                problems.append(("parentRef", "required for an httproute: {name, namespace} of its Gateway"))
            if self.tls_secret is not None:
                problems.append(
                    ("tlsSecret", "not for an httproute: the Gateway's HTTPS listener names the certificate")
                )
            if self.class_name is not None:
                problems.append(("className", "not for an httproute: the Gateway has its class"))
        if problems:
            raise cross_field(*problems)
        return self
