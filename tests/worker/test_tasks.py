"""worker.tasks: a background loop stops when asked, even when what it awaited swallowed the cancel.

The swallowing call here stands in for a library (redis-py turned the cancellation of a call in
flight into ``ConnectionError: Connection closed by server.``, and Python 3.11's ``wait_for`` can
return normally instead of raising it): the race that triggers them in the worker cannot be timed
from a test, so its outcome is reproduced directly.
"""

from __future__ import annotations

import asyncio

from redis.exceptions import ConnectionError

from worker import tasks


async def _swallowing_call() -> None:
    """Awaits until cancelled, then raises an error of its own instead of ``CancelledError``."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        raise ConnectionError("Connection closed by server.") from None


async def _quietly_swallowing_call() -> None:
    """Awaits until cancelled, then returns as if it had finished."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        return


async def test_a_loop_that_catches_errors_still_ends_when_its_call_turns_the_cancel_into_one() -> None:
    counted: list[str] = []
    running = True

    async def loop(guarded: bool) -> None:
        while running:
            try:
                await _swallowing_call()
            except Exception as err:
                if guarded:
                    tasks.reraise_cancel(err)
                counted.append(type(err).__name__)
            await asyncio.sleep(0.01)

    unguarded = asyncio.ensure_future(loop(guarded=False))
    await asyncio.sleep(0.05)
    assert not await tasks.stop(unguarded, 0.3)  # what the worker did: it loops on
    assert counted == ["ConnectionError"] * len(counted) and counted
    running = False  # cancelling alone cannot end it: let it return after this round
    unguarded.cancel()
    await asyncio.wait({unguarded}, timeout=1)
    assert unguarded.done() and not unguarded.cancelled()
    running = True

    counted.clear()
    guarded = asyncio.ensure_future(loop(guarded=True))
    await asyncio.sleep(0.05)
    assert await tasks.stop(guarded, 1)
    assert guarded.cancelled() and counted == []


async def test_a_checkpoint_between_rounds_ends_a_loop_whose_round_returned_normally() -> None:
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            await _quietly_swallowing_call()
            tasks.checkpoint()

    task = asyncio.ensure_future(loop())
    await asyncio.sleep(0.05)
    assert await tasks.stop(task, 1)
    assert task.cancelled() and rounds == 1


async def test_nothing_is_raised_in_a_task_no_one_asked_to_stop() -> None:
    async def work() -> bool:
        tasks.checkpoint()
        tasks.reraise_cancel(ValueError("a real failure"))
        return tasks.cancel_requested()

    assert await asyncio.ensure_future(work()) is False
    assert tasks.cancel_requested() is False  # the test's own task
    assert await tasks.stop(None, 0.1)
