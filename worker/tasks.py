"""Stopping the worker's background loops, even when a library swallowed their cancellation.

A loop that catches ``Exception`` around its calls (housekeeping, the API's Redis check) can lose
the ``CancelledError`` that stops it: a client may turn it into an error of its own (redis-py's
``ConnectionError`` for a connection closed mid-call was seen), and Python 3.11's
``asyncio.wait_for`` drops one that arrives as its inner call finishes. The loop then caught that
error and went on, and the process never exited after ``worker stopped``. Since Python 3.11 a task
knows it was asked to stop (``Task.cancelling``): these loops ask.
"""

from __future__ import annotations

import asyncio


def cancel_requested() -> bool:
    """Whether the running task has been asked to cancel (and has not taken it back)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def checkpoint() -> None:
    """Raise ``CancelledError`` if the running task was asked to cancel: for a loop between two
    rounds, whose last round may have swallowed it without an error."""
    if cancel_requested():
        raise asyncio.CancelledError()


def reraise_cancel(err: BaseException) -> None:
    """Raise ``CancelledError`` from ``err`` if the running task was asked to cancel: ``err`` is
    then what a library made of that cancellation, not a failure to count."""
    if cancel_requested():
        raise asyncio.CancelledError() from err


async def stop(task: asyncio.Task[None] | None, timeout: float) -> bool:
    """Cancel ``task`` and wait up to ``timeout`` seconds for it to end; True if it ended."""
    if task is None or task.done():
        return True
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    return bool(done)
