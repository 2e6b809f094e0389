"""Work deferred to the end of the current event-loop pass.

The consumer's per-job log lines (``worker.logs.PassHandler``) and counts
(``worker.metrics.PassTally``) are gathered during a pass and written once when it
ends (#34); both schedule that write here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def at_pass_end(callback: Callable[[], None]) -> None:
    """Run ``callback`` when this event-loop pass ends; at once when no loop is running."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        callback()
        return
    loop.call_soon(callback)
