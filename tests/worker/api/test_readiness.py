"""The API's Redis watch stops when closed, even when the close lands as a check answers.

Python 3.11's ``asyncio.wait_for`` returns the inner call's result instead of raising the
cancellation when both arrive in the same pass (CPython gh-86296, fixed in 3.12): the watch then
went on checking and ``close()`` waited for ever. The check here answers and asks for the close
in the same pass, which is that race made certain; the real check against a real Redis is
``test_api_health.py``'s.
"""

from __future__ import annotations

import asyncio

from worker.api.readiness import RedisWatch


async def test_a_close_that_lands_as_a_check_answers_ends_the_watch() -> None:
    checks = 0
    closing: list[asyncio.Future[None]] = []

    async def check() -> dict[str, int]:
        nonlocal checks
        checks += 1
        if checks == 2:  # start()'s check was the first; close as the second answers
            loop = asyncio.get_running_loop()
            loop.call_soon(lambda: closing.append(asyncio.ensure_future(watch.close())))
        return {"wait": 0}

    watch = RedisWatch(check, max_age=0.2)  # a check every 0.05 s
    await watch.start()
    for _ in range(100):
        if closing:
            break
        await asyncio.sleep(0.01)
    assert closing, "the second check never ran"
    await asyncio.wait_for(closing[0], 5)
    assert checks == 2  # nothing checked after the close
