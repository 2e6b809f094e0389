"""Supervise background processes with pid files: start detached, check, stop.

A pid file alone is not trusted: a pid is counted as ours only while
``/proc/<pid>/cmdline`` still starts with the executable we started, so a
recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.errors import ProcessError


@dataclass(frozen=True)
class Proc:
    """One supervised process: its argv and where its pid and log go."""

    name: str
    argv: tuple[str, ...]
    pid_file: Path
    log_file: Path


def read_pid(proc: Proc) -> int | None:
    """The live pid of ``proc``, or None when it is not running (stale pid files are ignored)."""
    try:
        pid = int(proc.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    if not cmdline or os.path.basename(cmdline[0].decode()) != os.path.basename(proc.argv[0]):
        return None
    return pid


def start(proc: Proc, env: dict[str, str] | None = None) -> int:
    """Start ``proc`` in its own session (so it outlives this command); return its pid."""
    running = read_pid(proc)
    if running is not None:
        return running
    proc.pid_file.parent.mkdir(parents=True, exist_ok=True)
    proc.log_file.parent.mkdir(parents=True, exist_ok=True)
    # posix_spawn, not Popen: the process is meant to outlive this one, and a
    # Popen object dropped while its child runs warns (an error under pytest).
    pid = os.posix_spawnp(
        proc.argv[0],
        list(proc.argv),
        dict(os.environ if env is None else env),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(proc.log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    proc.pid_file.write_text(f"{pid}\n")
    _wait_for_exec(pid, proc.argv[0])
    return pid


def _wait_for_exec(pid: int, program: str, timeout: float = 5.0) -> None:
    """Wait until the spawned child runs ``program`` (or has exited).

    Between spawn and exec, /proc/<pid>/cmdline still shows this Python
    process, and :func:`read_pid` would not recognise the child yet.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except FileNotFoundError:
            return
        if os.path.basename(argv0) == os.path.basename(program):
            return
        time.sleep(0.01)


def stop(proc: Proc, grace: float = 10.0) -> bool:
    """SIGTERM ``proc``, SIGKILL it after ``grace`` seconds; return whether it was running."""
    pid = read_pid(proc)
    if pid is None:
        proc.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
    proc.pid_file.unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def log_tail(proc: Proc, lines: int = 20) -> str:
    """The last ``lines`` lines of the process's log, for error messages."""
    try:
        return "\n".join(proc.log_file.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def require_running(procs: Sequence[Proc]) -> None:
    """Raise with the log tail of the first process that has exited."""
    for proc in procs:
        if read_pid(proc) is None:
            raise ProcessError(f"{proc.name} is not running; last log lines:\n{log_tail(proc)}")
