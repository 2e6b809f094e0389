"""How much Redis the queue's jobs may hold, and the inline-source cap that keeps them inside it.

BullMQ keeps every job's data until the job is removed: until it finishes (waiting, delayed for a
retry's backoff or active: the API stops at ``PREVIEW_QUEUE_MAX`` of them), after it completed or
failed (``PREVIEW_KEEP_*_COUNT``), and its copy in
the dead-letter queue. So the most Redis the jobs can hold is that many jobs times the largest
one, and the largest one is its inline source as base64 plus a bounded rest
(:data:`JOB_REST_BYTES`). :func:`inline_cap` turns a budget in bytes into the largest inline
source that keeps the worst case inside it.

The worker's settings and the stack config both call :func:`inline_cap`, so a stack cannot
deploy a cap the worker would refuse. Imports only the standard library and ``worker.constants``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from worker import constants as c

if TYPE_CHECKING:
    from worker.tunables import Tunables

#: Everything of a stored job besides its inline source, at most: the rest of the payload (a
#: URL or path, up to 8 outputs, metadata up to ``METADATA_MAX_BYTES`` as stored JSON), its
#: options and stamps, a failure reason and stack trace, and its entries in the queue's sets
#: and the events stream. ``tests/worker/queue/test_redis_budget.py`` measures it on a real Redis.
JOB_REST_BYTES = 80 * 2**10
#: Redis's allocator rounds a large string up to its next size class: at most a quarter more.
ALLOCATOR_SLACK = 1.25
#: The DLQ may pass its count by this many entries before a dead-lettering trims it back.
DLQ_TRIM_SLACK = 100


@dataclass(frozen=True)
class Held:
    """The most jobs Redis holds at once, from the queue cap and the retention counts."""

    queue_max: int
    completed: int
    failed: int
    dlq: int

    @property
    def jobs(self) -> int:
        return self.queue_max + self.completed + self.failed + self.dlq + DLQ_TRIM_SLACK


def held_by(tunables: Tunables) -> Held:
    """The most jobs Redis holds under these tunables: the queue cap plus every retention count."""
    t = tunables
    return Held(t.queue_max, t.keep_completed_count, t.keep_failed_count, t.keep_dlq_count)


def job_bytes(max_inline_bytes: int) -> int:
    """The most Redis memory one job with an inline source of up to ``max_inline_bytes`` uses."""
    base64_bytes = (max_inline_bytes + 2) // 3 * 4
    return int(base64_bytes * ALLOCATOR_SLACK) + JOB_REST_BYTES


def largest_inline(budget_bytes: int, held: Held) -> int:
    """The largest inline cap whose worst case fits ``budget_bytes`` (0 when even no inline does)."""
    per_job = budget_bytes // max(held.jobs, 1) - JOB_REST_BYTES
    if per_job <= 0:
        return 0
    cap = int(per_job / ALLOCATOR_SLACK) // 4 * 3
    while cap > 0 and job_bytes(cap) > per_job + JOB_REST_BYTES:  # undo rounding up in base64
        cap -= 3
    return max(cap, 0)


@functools.lru_cache(maxsize=16)
def auto_inline(budget_bytes: int, held: Held) -> int:
    """The cap that ``max_inline_bytes = 0`` means: the largest that fits, at most the default maximum."""
    return min(largest_inline(budget_bytes, held), c.INLINE_BYTES_MAX_DEFAULT)


class BudgetError(ValueError):
    """A cap or budget that does not fit; ``key`` says which of the caller's names to blame."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason


def inline_cap(budget_bytes: int, held: Held, requested: int, names: dict[str, str]) -> int:
    """The inline cap to use: ``requested``, or when 0 the largest that fits, at most the default.

    ``names`` maps ``"budget"``, ``"inline"`` and ``"counts"`` to the caller's own key names (env
    vars for the worker, stack keys for the stack), so :class:`BudgetError` names the right key.
    """
    fits = largest_inline(budget_bytes, held)
    worst = held.jobs * JOB_REST_BYTES
    if worst > budget_bytes:
        raise BudgetError(
            names["budget"],
            f"{budget_bytes} bytes cannot hold {held.jobs} jobs ({names['counts']}) of even "
            f"{JOB_REST_BYTES} bytes each without an inline source; it needs at least {worst}",
        )
    if requested == 0:
        return auto_inline(budget_bytes, held)
    if requested > fits:
        raise BudgetError(
            names["inline"],
            f"{requested} bytes of inline source in each of {held.jobs} jobs ({names['counts']}) "
            f"could take {held.jobs * job_bytes(requested)} bytes of Redis, over {names['budget']} "
            f"({budget_bytes}); the largest cap that fits is {fits}, or 0 to use it",
        )
    return requested
