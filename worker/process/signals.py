"""The stop signals of every process kind, after uvicorn's: drain on the first, exit on the second.

The first SIGTERM or SIGINT is logged (``stop signal received, draining``) and asks the process
to stop taking work and finish what it holds within its grace period. A second one is logged
(``second stop signal, exiting now``) and ends the process at once, with status 128 + the
signal's number (143 for SIGTERM, 130 for SIGINT), after ``on_force`` has killed what the process
started (render processes, supervised children). ``python -m worker run`` (one process, the
supervisor and each of its children), ``api`` and ``sweep`` all stop through :class:`StopSignals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from worker import logs

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: prctl(2) option: the signal the kernel sends this process when its parent dies.
PR_SET_PDEATHSIG = 1
log = logs.get("signals")


def die_with_parent(parent: int) -> None:
    """In a child process: ask the kernel for SIGKILL when ``parent`` dies (``PR_SET_PDEATHSIG``),
    so nothing the worker or the API started outlives it; exit now if it already has died."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the prctl: nobody will send the signal
        os._exit(1)


def forced_status(sig: signal.Signals) -> int:
    """The exit status of a process ended by a second ``sig``: the shell's 128 + its number."""
    return 128 + int(sig)


class StopSignals:
    """Catches SIGTERM/SIGINT: the first sets :attr:`received` and calls ``on_stop``; a second exits.

    Install it in the running loop with :meth:`install` (asyncio processes) or with
    :meth:`install_sync` (a synchronous command); then poll :meth:`wait` or :attr:`received`.
    """

    def __init__(
        self, on_stop: Callable[[], None] | None = None, on_force: Callable[[], None] | None = None
    ) -> None:
        self.on_stop = on_stop
        self.on_force = on_force
        self.received: signal.Signals | None = None
        self._event = asyncio.Event()

    def install(self) -> StopSignals:
        """Handle the stop signals in the running event loop."""
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.handle, sig)
        return self

    def install_sync(self) -> StopSignals:
        """Handle the stop signals with :func:`signal.signal` (a process without an event loop)."""

        def handler(signum: int, _: FrameType | None) -> None:
            self.handle(signal.Signals(signum))

        for sig in STOP_SIGNALS:
            signal.signal(sig, handler)
        return self

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for the first stop signal, up to ``timeout`` seconds; True once one arrived."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        return self.received is not None

    def handle(self, sig: signal.Signals) -> None:
        """React to ``sig``: begin the drain the first time, end the process the second."""
        if self.received is None:
            self.received = sig
            log.info("stop signal received, draining", extra={"signal": sig.name})
            self._event.set()
            if self.on_stop is not None:
                self.on_stop()
            return
        log.warning(
            "second stop signal, exiting now",
            extra={"signal": sig.name, "first": self.received.name, "status": forced_status(sig)},
        )
        try:
            if self.on_force is not None:
                self.on_force()
        finally:
            # os._exit: a render thread or a blocked close must not keep the process alive.
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stdout.flush()
            os._exit(forced_status(sig))
