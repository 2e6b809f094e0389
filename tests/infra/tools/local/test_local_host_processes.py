"""The add-ons' shared harness (``infra.tools.local.addons.host_processes``), on real processes."""

import sys
from pathlib import Path

import pytest

from infra.errors import KubeError
from infra.tools.local.addons.host_processes import HostProcesses
from infra.tools.local.ports import free_port

# Python stays argv[0] while it sleeps (an `exec sleep` would not be recognised as ours, nor stopped).
SPEAK_AND_SLEEP = "import sys, time; print({!r}, file=sys.stderr, flush=True); time.sleep(60)"


def test_started_processes_answer_log_to_their_files_and_stop_last_first(tmp_path: Path) -> None:
    host = HostProcesses(tmp_path / "addon")
    port = free_port()
    served = tmp_path / "www"
    served.mkdir()
    server = host.start("web", [sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(served),
                                str(port)], files="www")  # fmt: skip
    host.wait(f"http://127.0.0.1:{port}/", "the web server", 30, server)
    chatty = host.start("chatty", [sys.executable, "-c", SPEAK_AND_SLEEP.format("hello from chatty")])
    host.wait(lambda: "hello" in chatty.log_file.read_text(), "chatty", 10, chatty)
    assert (server.pid_file, server.log_file) == (tmp_path / "addon/www.pid", tmp_path / "addon/www.log")
    assert "--- chatty\nhello from chatty" in host.log_tail()
    host.stop()
    assert host.started == []
    assert not server.pid_file.exists() and not chatty.pid_file.exists()


def test_a_wait_that_fails_shows_the_process_log(tmp_path: Path) -> None:
    host = HostProcesses(tmp_path, env={"PATH": "/usr/bin:/bin"})  # the env reaches the process
    failing = host.start("failing", [sys.executable, "-c", SPEAK_AND_SLEEP.format("cannot bind")])
    try:
        with pytest.raises(KubeError, match=r"(?s)never not ready after 1s\n.*cannot bind"):
            host.wait(lambda: False, "never", 1, failing)
    finally:
        host.stop()
