"""What the client raises on purpose; the root of the worker's error tree too.

:class:`InvalidJobError` is the contract's answer (every violation, not just the first), raised
alike by the client, the job API and the worker; ``worker.errors`` builds its own tree on
:class:`PreviewError`.
"""

from __future__ import annotations

from dataclasses import dataclass


class PreviewError(Exception):
    """Base of every error the client and the worker raise on purpose."""


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


class QueueFullError(PreviewError):
    """The queue already holds ``queue_max`` unfinished jobs; retry later (the API's 429)."""

    def __init__(self, unfinished: int, limit: int) -> None:
        self.unfinished, self.limit = unfinished, limit
        super().__init__(
            f"queue full: {unfinished} jobs not finished (waiting, delayed or active; max {limit})"
        )


class ConfigError(PreviewError, ValueError):
    """A client option (or, with ``from_env``, the variable it came from) is invalid; names which."""
