"""One small exception tree for everything a preview job can fail with.

``TransientJobError`` is retried with backoff; ``PermanentJobError`` and
``InvalidJobError`` fail the job at once and send it to the dead-letter queue.
"""

from __future__ import annotations

# The tree's root and the contract's errors are the client's (mobius_preview_client/errors.py):
# a producer catches the same classes the worker and the API raise.
from mobius_preview_client.errors import InvalidJobError, PreviewError, QueueFullError, Violation

__all__ = [
    "InvalidJobError",
    "PermanentJobError",
    "PreviewError",
    "QueueFullError",
    "RenderCancelled",
    "TransientJobError",
    "Violation",
]


class PermanentJobError(PreviewError):
    """Retrying cannot help: undecodable, oversized, refused or missing source."""


class TransientJobError(PreviewError):
    """May succeed later: network hiccup, upstream 5xx, timeout."""


class RenderCancelled(PreviewError):
    """A render was stopped because the worker is shutting down: the job is not at fault and goes
    back to the queue without using an attempt."""
