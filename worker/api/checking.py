"""Parse, validate and encode a job body away from the event loop: large bodies in a process.

The largest valid job (a 16 MiB inline source) costs a few hundred milliseconds of C calls
that hold the GIL (the JSON decode, regular expressions and the base64 size check over the
inline string, then the JSON encode BullMQ would do on the loop): in a thread of the API's
process they delayed health by 150 to 450 ms. A body of at least :data:`PROCESS_FROM_BYTES` goes
to one persistent process (``spawn``, started by the first such body, so a stack whose inline
cap keeps bodies smaller never runs it; ``nice`` :data:`NICENESS`; killed by the kernel when the
API dies; replaced if it dies), which returns the job already encoded
(:class:`~mobius_preview_client.contract.validation.Encoded`), so the loop only copies bytes.
Smaller bodies stay in the client's thread (:class:`~mobius_preview_client.client.Checks`): a
process round trip would cost more than their checks. One body at a time in each.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from mobius_preview_client.client import Checks
from mobius_preview_client.contract import validation
from mobius_preview_client.errors import InvalidJobError, Violation
from worker import constants as c
from worker.process.signals import die_with_parent

#: How much lower than the API's the checking process's CPU priority is (``nice(2)``).
NICENESS = 10
#: Bodies this large or larger are checked in the process; smaller ones in a thread.
PROCESS_FROM_BYTES = c.API_CHECK_PROCESS_FROM_BYTES

#: Why a body was refused (the API's 400 message) and every violation; or the job, encoded.
Outcome = tuple[str, list[Violation]] | validation.Encoded
NOT_JSON = "body is not valid JSON"
INVALID = "invalid job"


def check(body: bytes, max_inline_bytes: int | None, path_sources: bool) -> Outcome:
    """Parse, validate and encode ``body``; the refusal as a value (an exception's violations do
    not survive pickling)."""
    try:
        payload = validation.parse(body)
    except InvalidJobError as err:
        return NOT_JSON, err.violations
    try:
        return validation.prepare(payload, max_inline_bytes, path_sources)
    except InvalidJobError as err:
        return INVALID, err.violations


def _start(parent: int) -> None:
    """The checking process's initializer: it dies with the API (``PR_SET_PDEATHSIG``), and runs at
    a lower priority (``nice`` :data:`NICENESS`), so on a busy machine the kernel runs the API's
    event loop before a check."""
    die_with_parent(parent)
    os.nice(NICENESS)


class Checker:
    """:func:`check` in a thread or, for large bodies, in one persistent process."""

    def __init__(self, max_inline_bytes: int | None, path_sources: bool) -> None:
        self._options = (max_inline_bytes, path_sources)
        self._thread = Checks()
        self._slot = asyncio.Semaphore(1)
        self._pool: ProcessPoolExecutor | None = None

    def close(self) -> None:
        """Stop the process (a check in flight is abandoned)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def run(self, body: bytes) -> Outcome:
        """The outcome of :func:`check` for ``body``; a process that died is replaced, and the
        body checked again in it once."""
        if len(body) < PROCESS_FROM_BYTES:
            return await self._thread.run(check, body, *self._options)
        try:
            return await self._in_process(body)
        except BrokenProcessPool:  # it died (killed, out of memory): a new one, and this body once more
            self.close()
            return await self._in_process(body)

    async def _in_process(self, body: bytes) -> Outcome:
        """One body at a time in the process; the slot is freed when the process is done with it,
        even if the caller was cancelled first (so the bound holds)."""
        await self._slot.acquire()
        try:
            if self._pool is None:  # started by the first large body: most stacks' caps never need it
                spawn = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(1, spawn, initializer=_start, initargs=(os.getpid(),))
            future = asyncio.wrap_future(self._pool.submit(check, body, *self._options))
        except BaseException:
            self._slot.release()
            raise
        future.add_done_callback(self._done)
        return await asyncio.shield(future)

    def _done(self, future: asyncio.Future[Outcome]) -> None:
        self._slot.release()
        if not future.cancelled():
            future.exception()  # retrieved: a caller that was cancelled no longer will
