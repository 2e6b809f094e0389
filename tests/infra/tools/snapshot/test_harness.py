"""The mock harness runs the program whatever state the thread's event loop is in."""

from __future__ import annotations

import asyncio

import pytest

from infra.tools.snapshot.harness import run_program


@pytest.mark.parametrize("state", ["unset", "closed"])
def test_program_runs_after_an_earlier_loop_was_closed_or_unset(state: str) -> None:
    # pytest-asyncio closes its loop after async tests; a later program run must not fail
    # with "There is no current event loop" (found when the release tests ran first).
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.close()
    if state == "unset":
        asyncio.set_event_loop(None)
    run = run_program("dev")
    assert run.outputs["namespace"] == "preview-dev"
