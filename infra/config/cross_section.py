"""Rules of the stack config that span sections: where REDIS_URL comes from, which stacks may hold
secret values in their own file, what the artifact store and the job API need from ``secrets`` (or
``secretValues``) and ``network``, and whether the memory limits fit.

:class:`infra.config.model.StackConfig` applies them once every section is valid.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from infra.config.fields.quantities import quantity
from infra.config.sections.cluster_target import LOCAL_IDENTITY
from infra.config.sections.secrets_config import SECRET_VALUES_KEY
from mobius_preview_client.contract.validation import max_payload_bytes
from worker import constants as c
from worker.constants import ENV_REDIS_URL
from worker.queue import budget as redis_budget

if TYPE_CHECKING:
    from infra.config.model import StackConfig


def redis_source_problem(has_url: bool, from_vault: bool) -> str | None:
    """REDIS_URL comes from exactly one place: ``redisUrl`` or a Vault key."""
    if has_url and from_vault:
        return f"set either redisUrl or secrets.keys.{ENV_REDIS_URL}, not both"
    if not has_url and not from_vault:
        return f"required unless secrets.keys.{ENV_REDIS_URL} names a Vault property"
    return None


def secret_values_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """``secretValues`` only on the local cluster's stacks, and no env var from two places."""
    if not cfg.secret_values:
        return []
    problems = []
    if not cfg.cluster.is_local:
        problems.append((
            SECRET_VALUES_KEY,
            f"only a stack of the local cluster (cluster.identity {LOCAL_IDENTITY}) may hold secret "
            "values in its stack file; this one reads them from the vault (secrets.keys)",
        ))  # fmt: skip
    problems += [
        (
            f"{SECRET_VALUES_KEY}.{env}",
            f"set either {SECRET_VALUES_KEY}.{env} or secrets.keys.{env}, not both",
        )
        for env in sorted(set(cfg.secret_values) & set(cfg.secrets.keys))
    ]
    return problems


def store_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """Cross-section rules of the store and the API: credentials and tokens from a Secret, an S3 peer."""
    problems = []
    secret_env = set(cfg.secrets.keys) | set(cfg.secret_values)
    if c.ENV_API_TOKENS not in secret_env:
        problems.append(
            (
                "secrets.keys",
                f"needs {c.ENV_API_TOKENS}: the job API refuses to start without bearer tokens "
                f"(from the vault, or {SECRET_VALUES_KEY} in a local stack)",
            )
        )
    missing = sorted(c.STORE_SECRET_ENV_VARS - secret_env)
    if missing:
        problems.append(
            (
                "secrets.keys",
                f"artifacts.store s3 needs {' and '.join(missing)} (S3 credentials come only from the "
                f"vault, or {SECRET_VALUES_KEY} in a local stack)",
            )
        )
    if cfg.network.s3_namespace is None and not cfg.network.s3_cidrs:
        problems.append(("network.s3Cidrs", "set s3Cidrs or s3Namespace so pods can reach the S3 endpoint"))
    return problems


def memory_problems(cfg: StackConfig) -> list[tuple[str, str]]:
    """The worker's render processes, the API's request bodies and the Redis budget fit their limits."""
    problems: list[tuple[str, str]] = []
    processes, share = cfg.render_share
    if share < c.RENDER_MEMORY_BYTES_MIN:
        need = c.WORKER_BASE_MEMORY_BYTES + processes * (
            c.RENDER_PROCESS_BASE_MEMORY_BYTES + c.RENDER_MEMORY_BYTES_MIN
        )
        problems.append((
            "resources.limits.memory",
            f"{cfg.resources.limits.memory} leaves each of {processes} render processes {int(share)} "
            f"bytes, under the worker's minimum render budget ({c.RENDER_MEMORY_BYTES_MIN}); "
            f"give at least {math.ceil(need / 2**20)}Mi or fewer CPUs",
        ))  # fmt: skip
    bodies, api_memory = cfg.worker.api_bodies_bytes, cfg.api.resources.limits.memory
    if bodies * c.API_BODY_MEMORY_FACTOR > quantity(api_memory, "memory"):
        key = "apiBodyBudgetBytes" if cfg.worker.api_body_budget_bytes else "apiMaxBodyBytes"  # 0: one body
        problems.append((
            f"worker.{key}",
            f"{bodies} times {c.API_BODY_MEMORY_FACTOR} (what the request bodies in flight may cost "
            f"the API) is over api.resources.limits.memory {api_memory}",
        ))  # fmt: skip
    try:
        inline = cfg.inline_bytes  # raises when the caps do not fit the budget
    except redis_budget.BudgetError as err:
        problems.append((err.key, err.reason))
        return problems
    largest = min(cfg.worker.api_max_body_bytes, max_payload_bytes(inline))  # as the API reads them
    if largest >= c.API_CHECK_PROCESS_FROM_BYTES:
        need = bodies * c.API_BODY_MEMORY_FACTOR + c.API_CHECK_PROCESS_BASE_BYTES
        need += largest * c.API_CHECK_MEMORY_FACTOR
        if need > quantity(api_memory, "memory"):
            problems.append((
                "api.resources.limits.memory",
                f"{api_memory} is under the {math.ceil(need / 2**20)}Mi the API may need: bodies of up to "
                f"{largest} bytes (the inline cap {inline} as base64, or worker.apiMaxBodyBytes) are "
                f"checked in a process of their own ({c.API_CHECK_PROCESS_BASE_BYTES // 2**20}Mi, plus "
                f"{c.API_CHECK_MEMORY_FACTOR} times the body) besides the request bodies in flight; "
                "give more memory, or a smaller worker.maxInlineBytes",
            ))  # fmt: skip
    return problems
