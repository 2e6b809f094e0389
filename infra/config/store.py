"""Config sections of the job API's Deployment and of the artifact store (issue 8).

Assembled into :class:`infra.config.model.StackConfig`; the rules that span sections
(credentials and the API's tokens in ``secrets.keys``, an S3 egress peer) live in
:func:`infra.config.cross_section.store_problems`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator, model_validator

from infra.config.base_model import Model, check_range, cross_field
from infra.config.sections.api_exposure import ApiExposure
from infra.config.sections.workload import CpuMemory, Replicas, Resources
from worker import constants as c
from worker.tunables import check_endpoint_url

# The worker's own patterns, so a stack cannot deploy a value the worker refuses.
_BUCKET = re.compile(c.S3_BUCKET_PATTERN)

#: Why ``filesystem`` is refused in a stack (see :class:`Artifacts`).
FILESYSTEM_REFUSED = (
    "filesystem keeps artifacts on each pod's own emptyDir, which the job API's pods "
    "(deployed in every stack) cannot read; use s3"
)


class Api(Model):
    """The job API's Deployment. It always runs the stable image: no canary split for the API."""

    replicas: Replicas = Replicas(min=2, max=4)
    resources: Resources = Resources(
        requests=CpuMemory(cpu="100m", memory="128Mi"), limits=CpuMemory(cpu="500m", memory="256Mi")
    )
    cpu_target: int = 70
    # How the API is reached from outside the cluster (an Ingress or an HTTPRoute); none by default.
    exposure: ApiExposure | None = None

    _cpu = field_validator("cpu_target")(check_range(1, 100))


class Artifacts(Model):
    """Where the worker writes artifacts and where the API presigns them from.

    The rule is the simplest correct one: a stack always deploys the job API in
    its own pods, and each pod's ``DATA_DIR`` is a private emptyDir, so with
    ``filesystem`` the API could never serve an artifact a worker wrote, whatever
    the replica counts. ``filesystem`` therefore stays the worker's local default
    (``python -m worker`` outside Kubernetes) and a stack must use ``s3`` with a
    ``bucket``. The S3 credentials are not config: they come only from
    ``secrets.keys`` (Vault / External Secrets), like ``REDIS_URL``.
    """

    store: Literal["filesystem", "s3"] = "s3"
    bucket: str | None = None
    endpoint: str = ""
    public_endpoint: str = ""

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        if v is not None and not _BUCKET.fullmatch(v):
            raise ValueError(f"must be an S3 bucket name (3-63 of a-z 0-9 . -), got {v!r}")
        return v

    @field_validator("endpoint", "public_endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_endpoint_url(v, "they come from secrets.keys")

    @model_validator(mode="after")
    def _s3_only(self) -> Artifacts:
        if self.store == c.STORE_FILESYSTEM:
            raise cross_field(("store", FILESYSTEM_REFUSED))
        if self.bucket is None:
            raise cross_field(("bucket", "required when artifacts.store is s3"))
        return self
