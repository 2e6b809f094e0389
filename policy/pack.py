"""The policy pack's policies: :mod:`policy.rules`' checks wrapped as pulumi-policy policies."""

from __future__ import annotations

from typing import Any

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

from policy.rules import (
    DEFAULT_PRODUCTION_INSTANCES,
    check_configmap_secrets,
    check_images_pinned,
    check_limits,
    check_non_root,
    check_production,
    check_protection,
    check_slos,
)


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
]
ENFORCEMENT = EnforcementLevel.MANDATORY
