"""The non-secret env of the stack's processes: what their ConfigMaps hold.

Every process (consumer, job API, retention sweep) gets :func:`process_env`: the tunables, looped
over by ``worker.tunables.to_env``, and what the stack derives for all of them. The worker adds
the pod's layout and its render share (:func:`config_data`); the API adds where it listens.
Secrets are never here: they come from the stack's Secret (``infra/manifests/secret_sources.py``).
"""

from __future__ import annotations

from infra.config.model import StackConfig
from infra.manifests.pod import DATA_DIR
from worker import constants as c
from worker.tunables import to_env


def store_env(cfg: StackConfig) -> dict[str, str]:
    """Where the store is (its bucket and endpoints), shared by the worker, the API and the sweep.

    How it behaves (prefix, region, addressing, TTL, retention) are tunables, in ``worker.*``.
    """
    a = cfg.artifacts
    env = {c.ENV_ARTIFACT_STORE: a.store, c.ENV_S3_BUCKET: a.bucket or ""}
    if a.endpoint:
        env[c.ENV_S3_ENDPOINT] = a.endpoint
    if a.public_endpoint:
        env[c.ENV_S3_PUBLIC_ENDPOINT] = a.public_endpoint
    return env


def process_env(cfg: StackConfig) -> dict[str, str]:
    """The env every process of the stack gets (consumer, job API, sweep), so they judge a job alike.

    Every tunable (``worker.tunables.to_env``), then what the stack derives for all of them: the
    source hosts, path sources, the Redis budget (it sets the inline cap the API checks at enqueue)
    and where the store is.
    """
    return {
        **to_env(cfg.worker),
        # host:port: the worker allows a bare host on its scheme's default port only.
        c.ENV_SOURCE_HOSTS: ",".join(f"{h.host}:{h.port}" for h in cfg.source_hosts),
        c.ENV_PATH_SOURCES: "on" if cfg.path_sources else "off",
        c.ENV_REDIS_BUDGET_BYTES: str(cfg.redis_budget_bytes),
        **store_env(cfg),
    }


def config_data(cfg: StackConfig) -> dict[str, str]:
    """The worker's non-secret env: what every process gets, the pod's layout and the render share."""
    return {
        **process_env(cfg),
        c.ENV_DATA_DIR: DATA_DIR,
        c.ENV_METRICS_PORT: str(c.METRICS_PORT),
        **render_env(cfg),
    }


def render_env(cfg: StackConfig) -> dict[str, str]:
    """Render processes and their memory budget, sized from the worker container's limits.

    ``StackConfig.render_share`` does the arithmetic and refuses a limit too small for it. The
    worker caps each process at its budget, so the pod's memory limit holds whatever the sources are.
    """
    processes, budget = cfg.render_share
    return {c.ENV_RENDER_PROCESSES: str(processes), c.ENV_RENDER_MEMORY_BYTES: str(budget)}
