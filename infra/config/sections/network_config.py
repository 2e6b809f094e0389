"""The stack config's ``network`` section (the NetworkPolicies' peers) and ``sourceHosts`` (the hosts
the worker may fetch ``url`` sources from)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from infra.config.base_model import Model, check_range, cross_field
from infra.config.fields.identifiers import check_cidr, check_dns_label
from worker.constants import SOURCE_HOST_PATTERN


class Network(Model):
    """Peers of the NetworkPolicies: Redis and the S3 endpoint (by namespace and/or CIDR),
    and the namespace the job API's ingress traffic comes from."""

    redis_port: int = 6379
    # The sentinels' port, when REDIS_URL is redis+sentinel:// (mobius_preview_client/connections.py): egress
    # then opens it too, to the same peers, since the workers ask the sentinels for the master.
    redis_sentinel_port: int | None = None
    redis_namespace: str | None = "redis"
    redis_cidrs: list[str] = Field(default_factory=list)
    dns_namespace: str = "kube-system"
    api_ingress_namespace: str = "ingress-nginx"
    s3_port: int = 443
    s3_namespace: str | None = None
    s3_cidrs: list[str] = Field(default_factory=list)

    _port = field_validator("redis_port", "s3_port", "redis_sentinel_port")(check_range(1, 65535))
    _cidrs = field_validator("redis_cidrs", "s3_cidrs")(check_cidr)
    _ingress = field_validator("api_ingress_namespace")(check_dns_label)

    @model_validator(mode="after")
    def _redis_peer(self) -> Network:
        if self.redis_namespace is None and not self.redis_cidrs:
            raise cross_field(("redisNamespace", "set redisNamespace or redisCidrs so pods can reach Redis"))
        return self


class SourceHost(Model):
    """A host the worker may fetch ``url`` sources from, with the CIDRs it resolves into."""

    host: str
    cidrs: list[str]
    port: int = 443

    _cidrs = field_validator("cidrs")(check_cidr)
    _port = field_validator("port")(check_range(1, 65535))

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not re.fullmatch(SOURCE_HOST_PATTERN, v):  # the worker's own rule for PREVIEW_SOURCE_HOSTS
            raise ValueError(
                f"must be a host name without scheme or port (the port is `port`), got {v[:80]!r}"
            )
        return v
