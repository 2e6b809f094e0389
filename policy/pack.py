"""The policy pack's policies: :mod:`policy.rules`' checks wrapped as pulumi-policy policies."""

from __future__ import annotations

import json
from typing import Any

from pulumi.runtime import config as runtime_config
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pydantic import ValidationError

from infra.config.base_model import CONFIG_NAMESPACE
from infra.config.problems import problems_from
from infra.config.sections.image_signature import ImageSignature
from infra.supply_chain import cosign_signatures
from policy.rules import (
    DEFAULT_PRODUCTION_INSTANCES,
    check_configmap_secrets,
    check_images_pinned,
    check_limits,
    check_non_root,
    check_production,
    check_production_signer,
    check_protection,
    check_signed_images,
    check_slos,
    pod_images,
)

#: The stack config key naming the image signer (``StackConfig.image_signature``).
SIGNER_KEY = "imageSignature"


def _resource_policy(name: str, description: str, check: Any) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for problem in check(args.props):
            report(problem, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate)


def _validate_production(args: StackValidationArgs, report: ReportViolation) -> None:
    instances = args.get_config().get("productionInstances", DEFAULT_PRODUCTION_INSTANCES)
    by_props: list[PolicyResource] = [r for r in args.resources if r.resource_type.startswith("kubernetes:")]
    for problem in check_production([r.props for r in by_props], instances):
        report(problem, None)


def _validate_slos(args: StackValidationArgs, report: ReportViolation) -> None:
    instances = args.get_config().get("productionInstances", DEFAULT_PRODUCTION_INSTANCES)
    kube = [r.props for r in args.resources if r.resource_type.startswith("kubernetes:")]
    for problem in check_slos(kube, instances):
        report(problem, None)


def _validate_protection(args: StackValidationArgs, report: ReportViolation) -> None:
    instances = args.get_config().get("productionInstances", DEFAULT_PRODUCTION_INSTANCES)
    kube = [
        (r.props, bool(r.opts.protect)) for r in args.resources if r.resource_type.startswith("kubernetes:")
    ]
    for problem in check_protection(kube, instances):
        report(problem, None)


def stack_signer(config: dict[str, str] | None = None) -> tuple[ImageSignature | None, list[str]]:
    """The stack's ``imageSignature`` from the config the engine hands the pack (``PULUMI_CONFIG``),
    and the problems that make it unusable (each naming the key)."""
    env = runtime_config.get_config_env() if config is None else config
    raw = env.get(f"{CONFIG_NAMESPACE}:{SIGNER_KEY}")
    if raw is None:
        return None, []
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
        return ImageSignature.model_validate(value), []
    except ValueError as exc:  # ValidationError is a ValueError, and so is bad JSON
        lines = problems_from(exc) if isinstance(exc, ValidationError) else [f"<root>: not JSON: {exc}"]
        return None, [f"{SIGNER_KEY}.{line}".replace(".<root>", "") for line in lines]


def _validate_signatures(args: StackValidationArgs, report: ReportViolation) -> None:
    signer, problems = stack_signer()
    for problem in problems:
        report(problem, None)
    if signer is None:
        return
    kube = [r.props for r in args.resources if r.resource_type.startswith("kubernetes:")]
    verify = lambda image: cosign_signatures.verify(image, **signer.signer())  # noqa: E731
    for problem in check_signed_images(pod_images(kube), verify):
        report(problem, None)


def _validate_production_signer(args: StackValidationArgs, report: ReportViolation) -> None:
    instances = args.get_config().get("productionInstances", DEFAULT_PRODUCTION_INSTANCES)
    signer, problems = stack_signer()
    kube = [r.props for r in args.resources if r.resource_type.startswith("kubernetes:")]
    for problem in check_production_signer(kube, instances, signer is not None or bool(problems)):
        report(problem, None)


_INSTANCES_SCHEMA = PolicyConfigSchema(
    properties={
        "productionInstances": {
            "type": "array",
            "items": {"type": "string"},
            "default": DEFAULT_PRODUCTION_INSTANCES,
        },
    }
)

POLICIES = [
    _resource_policy(
        "images-pinned-by-digest", "Container images are pinned by sha256 digest.", check_images_pinned
    ),
    _resource_policy(
        "no-secrets-in-configmaps",
        "ConfigMaps hold no secret-looking keys or credentials.",
        check_configmap_secrets,
    ),
    _resource_policy(
        "resource-limits-set", "Containers set CPU and memory requests and limits.", check_limits
    ),
    _resource_policy("run-as-non-root", "Containers run as a non-root user.", check_non_root),
    StackValidationPolicy(
        name="production-sizing",
        description="Production: at least 2 replicas, a PodDisruptionBudget, canary weight at most 50.",
        validate=_validate_production,
        config_schema=_INSTANCES_SCHEMA,
    ),
    StackValidationPolicy(
        name="production-slos",
        description="Production: burn-rate pages and tickets for the availability and latency SLOs.",
        validate=_validate_slos,
        config_schema=_INSTANCES_SCHEMA,
    ),
    StackValidationPolicy(
        name="production-protection",
        description="Production: the Namespace and every object holding state or identity are protected.",
        validate=_validate_protection,
        config_schema=_INSTANCES_SCHEMA,
    ),
    StackValidationPolicy(
        name="images-signed",
        description="Where the stack names an imageSignature signer, every image carries its signature.",
        validate=_validate_signatures,
    ),
    # Advisory until the committed prod stack names its signer (docs/supply-chain.md): mandatory,
    # it would refuse every prod preview that cannot reach the real registry's signatures.
    StackValidationPolicy(
        name="production-signer-named",
        description="Production: the stack names an imageSignature signer.",
        validate=_validate_production_signer,
        config_schema=_INSTANCES_SCHEMA,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]
ENFORCEMENT = EnforcementLevel.MANDATORY
