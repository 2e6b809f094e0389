"""The stack config's ``cluster`` section: which cluster a stack deploys to, and how it is recognised.

A stack is bound to one cluster. ``kubeconfig`` and ``context`` say how to reach it (both
optional: without them the ambient ``KUBECONFIG`` and its current context, which is what the
local demo and the tests use); ``identity`` says which cluster it must be: the UID of its
``kube-system`` Namespace, which survives kubeconfig renames and is new for every cluster; and
``server`` (optional) the API server URL it must be reached at. The program checks both before it
declares anything (:mod:`infra.components.target`).

``identity: local`` is the dev stack's: "the local cluster of ``python -m infra local up``",
recreated (with a new UID) by every demo and test run. It is accepted only for an API server on
a loopback address, so a shell pointing at a remote cluster still fails the check.
"""

from __future__ import annotations

import re

from pydantic import field_validator

from infra.config.base_model import Model

#: The ``identity`` of the demo's local cluster (a loopback API server; see the module docstring).
LOCAL_IDENTITY = "local"
#: A Namespace UID as Kubernetes writes it (a lowercase RFC 4122 UUID).
UID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CONTEXT_RE = re.compile(r"[^\s]{1,253}")


class ClusterTarget(Model):
    """The cluster a stack deploys to: how to reach it and how to recognise it."""

    # No default: a stack that does not say which cluster it is for is refused.
    identity: str
    kubeconfig: str | None = None
    context: str | None = None
    server: str | None = None

    @field_validator("identity")
    @classmethod
    def _identity(cls, v: str) -> str:
        if v != LOCAL_IDENTITY and not UID_RE.fullmatch(v):
            raise ValueError(
                "must be the UID of the cluster's kube-system Namespace "
                "(`kubectl get namespace kube-system -o jsonpath='{.metadata.uid}'`) "
                f"or {LOCAL_IDENTITY!r} for the local demo cluster, got {v[:80]!r}"
            )
        return v

    @field_validator("kubeconfig")
    @classmethod
    def _kubeconfig(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or "\n" in v):
            raise ValueError(f"must be the path of a kubeconfig file, got {v[:80]!r}")
        return v

    @field_validator("context")
    @classmethod
    def _context(cls, v: str | None) -> str | None:
        if v is not None and not _CONTEXT_RE.fullmatch(v):
            raise ValueError(f"must be a kubeconfig context name, got {v[:80]!r}")
        return v

    @field_validator("server")
    @classmethod
    def _server(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", v):
            raise ValueError(f"must be the API server's URL (https://host:port), got {v[:80]!r}")
        return None if v is None else v.rstrip("/")

    @property
    def is_local(self) -> bool:
        """Whether this is the demo's local cluster (``identity: local``)."""
        return self.identity == LOCAL_IDENTITY
