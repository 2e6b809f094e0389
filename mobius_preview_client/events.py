"""Waiting for a job through BullMQ's event stream, ``<prefix>:<queue>:events``, never by polling.

BullMQ's scripts append an entry (``event``, ``jobId``, …) to the stream whenever a job moves
(``active``, ``completed``, ``failed``, ``delayed``, ``removed``); Node's ``QueueEvents`` and
``job.waitUntilFinished`` read the same stream. :func:`next_for` blocks in ``XREAD BLOCK`` until an
entry for one job arrives, so a waiter learns of a job's end within one round trip.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis

#: The longest one XREAD blocks: under the client's 5 s socket timeout, so a blocked read is never
#: taken for a dead connection. A job's end still wakes it at once.
BLOCK_SECONDS = 2.0


async def cursor(client: aioredis.Redis, key: str) -> str:
    """The id of the stream's newest entry ("0-0" for none): read from here, nothing is missed."""
    newest = await client.xrevrange(key, count=1)
    return str(newest[0][0]) if newest else "0-0"


async def next_for(client: aioredis.Redis, key: str, job_id: str, since: str, timeout: float) -> str | None:
    """Block until an entry about ``job_id`` comes after ``since``; the new cursor, or None at ``timeout``.

    Entries about other jobs move the cursor on and are otherwise skipped.
    """
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        block_ms = max(1, int(min(left, BLOCK_SECONDS) * 1000))
        found: Any = await client.xread({key: since}, block=block_ms, count=100)
        for _stream, entries in found or ():
            for entry_id, entry in entries:
                since = str(entry_id)
                if entry.get("jobId") == job_id:
                    return since
    return None
