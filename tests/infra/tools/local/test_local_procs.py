"""Process supervision with pid files, on real processes."""

import os
import shutil
import time
from pathlib import Path

import pytest

from infra.errors import ProcessError
from infra.tools.local import procs
from infra.tools.local.procs import Proc


def proc(tmp_path: Path, *argv: str, name: str = "sleeper") -> Proc:
    return Proc(name, argv, tmp_path / "pids" / f"{name}.pid", tmp_path / "logs" / f"{name}.log")


def test_start_is_idempotent_and_stop_ends_the_process(tmp_path: Path) -> None:
    sleeper = proc(tmp_path, shutil.which("sleep") or "/bin/sleep", "60")
    pid = procs.start(sleeper)
    assert procs.start(sleeper) == pid
    assert procs.read_pid(sleeper) == pid
    assert procs.stop(sleeper) is True
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert not sleeper.pid_file.exists()
    assert procs.stop(sleeper) is False


def test_a_recycled_pid_is_not_ours(tmp_path: Path) -> None:
    sleeper = proc(tmp_path, "/bin/sleep", "60")
    sleeper.pid_file.parent.mkdir(parents=True)
    sleeper.pid_file.write_text(f"{os.getpid()}\n")  # a live pid, but of another program
    assert procs.read_pid(sleeper) is None
    assert procs.stop(sleeper) is False


def test_a_process_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    stubborn = proc(tmp_path, "/bin/bash", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done")
    pid = procs.start(stubborn)
    deadline = time.monotonic() + 5
    while "ready" not in procs.log_tail(stubborn) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    assert procs.stop(stubborn, grace=0.5) is True
    assert 0.5 <= time.monotonic() - started < 5
    assert procs.read_pid(stubborn) is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_require_running_reports_the_log_of_a_dead_process(tmp_path: Path) -> None:
    crasher = proc(tmp_path, "/bin/bash", "-c", "echo 'boom: bad flag' >&2; exit 3", name="crasher")
    procs.start(crasher)
    time.sleep(0.5)
    with pytest.raises(ProcessError, match=r"crasher is not running; last log lines:\nboom: bad flag"):
        procs.require_running([crasher])
