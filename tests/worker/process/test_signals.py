"""The stop-signal helper in its synchronous form (``python -m worker sweep``), sent real signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
# A command that works until told to stop, then takes `finish` seconds to finish its last piece.
SCRIPT = """
import sys, time
from worker import logs
from worker.process.signals import StopSignals
logs.setup("INFO")
stop = StopSignals().install_sync()
print("ready", flush=True)
while stop.received is None:
    time.sleep(0.01)
time.sleep(float(sys.argv[1]))
print("finished", flush=True)
"""


def start(finish: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(finish)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def events(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_the_first_signal_lets_the_work_finish() -> None:
    proc = start(finish=1.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0 and "finished" in out.splitlines()
    assert [(e["msg"], e["signal"]) for e in events(out)] == [("stop signal received, draining", "SIGTERM")]


def test_a_second_signal_exits_at_once_with_128_plus_its_number() -> None:
    proc = start(finish=60.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # still finishing its work
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=5)
    assert proc.returncode == 143 and time.monotonic() - started < 2.0
    assert "finished" not in out
    first, second = events(out)
    assert (first["msg"], first["signal"]) == ("stop signal received, draining", "SIGINT")
    assert (second["msg"], second["level"], second["signal"], second["first"], second["status"]) == (
        "second stop signal, exiting now", "warning", "SIGTERM", "SIGINT", 143
    )  # fmt: skip
