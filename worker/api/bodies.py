"""Request bodies of the job API: read within a per-request cap, a per-process budget and the job's shape.

Three bounds, each refused before the bytes past it are read (the answer carries
``Connection: close``, so the server stops reading the rest):

- one body: ``PREVIEW_API_MAX_BODY_BYTES``, or less when no valid job can be that large (the
  largest inline source the Redis budget allows, as base64, plus 64 KiB): 413;
- every body in flight in this process together: ``PREVIEW_API_BODY_BUDGET_BYTES``, taken by the
  declared length before a byte is read (else as the bytes arrive) and held until the request is
  answered, since the parsed and validated copies live that long: 503 with ``Retry-After``;
- the JSON's shape: more tokens or nesting than any job has
  (:class:`mobius_preview_client.contract.shape.Scanner`), found while the body streams in: 400.

A body that stops arriving is the server's to time out (``worker/api/server.py``); the reader
then sees the client gone, and answers 408 to no one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request

from mobius_preview_client.contract.shape import Scanner, ShapeError
from worker import constants as c
from worker.errors import Violation

#: Seconds a client is told to wait when the budget is spent: bodies in flight last about that.
RETRY_AFTER = "2"


@dataclass
class Refused(Exception):
    """Why a body was not read to its end: the HTTP status, the message and any violation."""

    status: int
    message: str
    violation: Violation | None = None
    retry_after: str | None = None


class BodyBudget:
    """The request body bytes this process holds at once, at most ``total`` (one event loop: no lock)."""

    def __init__(self, total: int) -> None:
        self.total, self.held = total, 0

    def take(self, size: int) -> bool:
        """Hold ``size`` more bytes if the budget has them; False (and nothing held) if not."""
        if self.held + size > self.total:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        """Return ``size`` bytes taken before."""
        self.held -= size


@asynccontextmanager
async def read(request: Request, limit: int, budget: BodyBudget) -> AsyncIterator[bytes]:
    """The body, its bytes held in ``budget`` until the block ends; :class:`Refused` if a bound is hit."""
    declared = request.headers.get("content-length")
    expected = int(declared) if declared is not None and declared.isdigit() else 0
    if expected > limit:
        raise Refused(413, f"request body over {limit} bytes")  # refused before a byte of it is read
    held = 0
    try:
        held = _take(budget, expected, held)
        scanner, chunks, size = Scanner(), [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Refused(413, f"request body over {limit} bytes")
                held = _take(budget, size, held)
                scanner.feed(chunk)
                chunks.append(chunk)
        except ShapeError as err:
            raise Refused(400, "invalid job", Violation("$", str(err))) from None
        except ClientDisconnect:
            raise Refused(408, "request body not received: the client went away, or took longer "
                          f"than {c.ENV_API_BODY_TIMEOUT_SECONDS}") from None  # fmt: skip
        body = b"".join(chunks)
        del chunks
        yield body
    finally:
        budget.give(held)


def _take(budget: BodyBudget, size: int, held: int) -> int:
    """Hold up to ``size`` bytes in all (``held`` already are): the new amount held, or Refused."""
    if size > held and not budget.take(size - held):
        raise Refused(503, "too many request bodies in flight; retry shortly", retry_after=RETRY_AFTER)
    return max(size, held)
