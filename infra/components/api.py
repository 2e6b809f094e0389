"""The job API as a component: wires :mod:`infra.manifests.job_api`'s objects, the Deployment and
the optional route from outside the cluster (:mod:`infra.manifests.api_route`).

The API always runs the stable image (see :mod:`infra.manifests.job_api` for why).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from infra.components.declare import child_options, declare, ready_within
from infra.config.model import StackConfig
from infra.manifests.api_route import api_route
from infra.manifests.common import API_NAME, Manifest, config_checksum
from infra.manifests.job_api import api_config_data, api_deployment, api_objects
from infra.manifests.pod import SecretFiles


@dataclass(frozen=True)
class ApiArgs:
    """Inputs of :class:`JobApi`."""

    config: StackConfig
    instance: str
    service_account: str
    secret_sources: list[Manifest]
    secret_checksum: Any  # pulumi.Output[str], not itself secret
    secret_files: SecretFiles


class JobApi(pulumi.ComponentResource):
    """The job API: everything :func:`~infra.manifests.job_api.api_objects` lists plus the Deployment."""

    config_checksum: str

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mobius:preview:Api", name, None, opts)
        child = child_options(self, opts)
        cfg = args.config
        self.config_checksum = config_checksum(api_config_data(cfg))
        for suffix, manifest in api_objects(cfg, args.instance):
            declare(f"{name}-{suffix}", manifest, child)
        deployment = api_deployment(
            cfg,
            args.instance,
            service_account=args.service_account,
            secret_sources=args.secret_sources,
            secret_files=args.secret_files,
            config_checksum=self.config_checksum,
            secret_checksum=args.secret_checksum,
        )
        timed = pulumi.ResourceOptions.merge(child, ready_within(cfg.ready_timeout_seconds))
        declare(f"{name}-deployment", deployment, timed)
        route = api_route(cfg, args.instance)  # api.exposure: an Ingress or an HTTPRoute, if any
        if route is not None:
            declare(f"{name}-route", route, child)
        self.register_outputs({"deploymentName": API_NAME, "image": cfg.image})
