"""One small exception tree for everything a preview job can fail with.

``TransientJobError`` is retried with backoff; ``PermanentJobError`` and
``InvalidJobError`` fail the job at once and send it to the dead-letter queue.
"""

from __future__ import annotations

from typing import ClassVar

# The tree's root and the contract's errors are the client's (mobius_preview_client/errors.py):
# a producer catches the same classes the worker and the API raise.
from mobius_preview_client.errors import InvalidJobError, PreviewError, QueueFullError, Violation
from worker import constants as c

__all__ = [
    "BudgetExceeded",
    "InvalidJobError",
    "PermanentJobError",
    "PreviewError",
    "QueueFullError",
    "RenderCancelled",
    "RenderError",
    "RenderTimeout",
    "SourceError",
    "SourceTimeout",
    "SourceUnavailable",
    "StoreError",
    "TransientJobError",
    "Violation",
    "from_reason",
    "reason_of",
]


class PermanentJobError(PreviewError):
    """Retrying cannot help: undecodable, oversized, refused or missing source."""


class TransientJobError(PreviewError):
    """May succeed later: network hiccup, upstream 5xx, timeout."""


class RenderCancelled(PreviewError):
    """A render was stopped because the worker is shutting down: the job is not at fault and goes
    back to the queue without using an attempt."""


# The classes below say why a job failed; their ``reason`` is the outcome counter's ``reason`` label.


class SourceError(PermanentJobError):
    """The source cannot be had: missing, refused, oversized, not allowed."""

    reason: ClassVar[str] = c.REASON_SOURCE


class SourceUnavailable(TransientJobError):
    """The source could not be fetched now: DNS, connection, upstream 5xx."""

    reason: ClassVar[str] = c.REASON_SOURCE


class SourceTimeout(SourceUnavailable):
    """Fetching the source timed out."""

    reason: ClassVar[str] = c.REASON_TIMEOUT


class RenderError(PermanentJobError):
    """The source cannot be decoded or rendered (corrupt image, damaged PDF, the render process died)."""

    reason: ClassVar[str] = c.REASON_RENDER


class RenderKilled(TransientJobError):
    """The kernel killed the render process (SIGKILL): the pod ran out of memory. Retried: the next
    attempt may find the memory free, and the attempts' limit still ends a job that never fits."""

    reason: ClassVar[str] = c.REASON_RENDER


class BudgetExceeded(RenderError):
    """The pixel guard or the render memory budget refused the source."""

    reason: ClassVar[str] = c.REASON_BUDGET


class RenderTimeout(RenderError):
    """The render took longer than its timeout."""

    reason: ClassVar[str] = c.REASON_TIMEOUT


class StoreError(TransientJobError):
    """The artifact store could not be read or written (worker.store's StoreUnavailableError)."""

    reason: ClassVar[str] = c.REASON_STORE


#: The permanent classes by reason: how a render process's reply names the error it ended with.
_PERMANENT: dict[str, type[PermanentJobError]] = {
    c.REASON_RENDER: RenderError, c.REASON_BUDGET: BudgetExceeded, c.REASON_TIMEOUT: RenderTimeout,
    c.REASON_SOURCE: SourceError,
}  # fmt: skip


def reason_of(err: BaseException) -> str:
    """The ``reason`` label of an attempt that ended with ``err``: one of ``constants.REASONS``.

    By class, never by message; anything unclassified is ``internal``, so the label stays bounded.
    """
    if isinstance(err, InvalidJobError):
        return c.REASON_INVALID
    reason = getattr(type(err), "reason", None)
    return reason if isinstance(reason, str) and reason in c.REASONS else c.REASON_INTERNAL


def from_reason(reason: object, message: str, *, transient: bool = False) -> PreviewError:
    """The error a render process reported by ``reason`` (see :func:`reason_of`), rebuilt in the parent."""
    if transient:
        return TransientJobError(message)
    return _PERMANENT.get(reason if isinstance(reason, str) else "", PermanentJobError)(message)
