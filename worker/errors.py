"""One small exception tree for everything a preview job can fail with.

``TransientJobError`` is retried with backoff; ``PermanentJobError`` and
``InvalidJobError`` fail the job at once and send it to the dead-letter queue.
"""

from __future__ import annotations

from dataclasses import dataclass


class PreviewError(Exception):
    """Base of every error the worker raises on purpose."""


@dataclass(frozen=True)
class Violation:
    """One contract violation: where (a JSON path such as ``$.outputs[0].width``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidJobError(PreviewError):
    """The payload breaks the job contract; carries every violation, not just the first."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__("invalid job: " + "; ".join(str(v) for v in violations))


class PermanentJobError(PreviewError):
    """Retrying cannot help: undecodable, oversized, refused or missing source."""


class TransientJobError(PreviewError):
    """May succeed later: network hiccup, upstream 5xx, timeout."""


class RenderCancelled(PreviewError):
    """A render was stopped because the worker is shutting down: the job is not at fault and goes
    back to the queue without using an attempt."""
