"""The preview worker's producer client: the job schema and its validator, typed jobs, and a sync
and an async client that enqueue, read and wait for jobs on the worker's BullMQ queue.

    from mobius_preview_client import PreviewClient

    with PreviewClient("redis://redis:6379/0") as client:
        done = client.wait(client.enqueue(job).job_id, timeout=60)

Installed as the ``mobius-preview-client`` wheel (``clients/python/``); the worker imports its
contract, names and job reads from here. The clients are imported on first use, so importing
:mod:`mobius_preview_client.names` (as ``worker.constants`` does) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mobius_preview_client.client import AsyncPreviewClient, Enqueued
    from mobius_preview_client.config import ClientConfig
    from mobius_preview_client.contract.validation import validate, violations
    from mobius_preview_client.errors import (
        ConfigError,
        InvalidJobError,
        PreviewError,
        QueueFullError,
        Violation,
    )
    from mobius_preview_client.model import Output, PreviewJob
    from mobius_preview_client.sync import PreviewClient

#: The wheel's version (``clients/python/pyproject.toml`` reads it from here).
__version__ = "0.1.0"
#: Each public name and the module that defines it.
_WHERE = {
    "AsyncPreviewClient": "client",
    "Enqueued": "client",
    "ClientConfig": "config",
    "validate": "contract.validation",
    "violations": "contract.validation",
    "ConfigError": "errors",
    "InvalidJobError": "errors",
    "PreviewError": "errors",
    "QueueFullError": "errors",
    "Violation": "errors",
    "Output": "model",
    "PreviewJob": "model",
    "PreviewClient": "sync",
}
__all__ = [
    "AsyncPreviewClient",
    "ClientConfig",
    "ConfigError",
    "Enqueued",
    "InvalidJobError",
    "Output",
    "PreviewClient",
    "PreviewError",
    "PreviewJob",
    "QueueFullError",
    "Violation",
    "__version__",
    "validate",
    "violations",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
