"""``infra.runner.run``: the one way the deployment half runs a tool, with real processes."""

from __future__ import annotations

import pytest

from infra import runner
from infra.errors import CertError, InfraError, KubeError


def test_stdout_is_returned_and_stderr_kept_apart() -> None:
    assert runner.run(["sh", "-c", "echo data; echo progress >&2"]) == "data\n"


def test_a_failure_raises_the_callers_class_with_the_command_and_the_tail_of_stderr() -> None:
    script = "for i in $(seq 1 40); do echo line$i >&2; done; exit 3"
    with pytest.raises(KubeError) as info:
        runner.run(["sh", "-c", script], error=KubeError)
    err = info.value
    assert str(err).startswith(f"sh -c {script} exited 3:\nline26\n")
    assert str(err).endswith("line40") and "line25" not in str(err)  # the last 15 lines
    assert (err.argv, err.returncode) == (["sh", "-c", script], 3)  # type: ignore[attr-defined]
    assert "line1\n" in err.output  # type: ignore[attr-defined]


def test_check_false_returns_the_output_of_a_failed_run() -> None:
    assert runner.run(["sh", "-c", "echo partial; exit 1"], check=False) == "partial\n"


def test_a_timeout_and_a_missing_binary_raise_too() -> None:
    with pytest.raises(CertError, match=r"sleep 5 did not finish within 0.2s"):
        runner.run(["sleep", "5"], error=CertError, timeout=0.2)
    with pytest.raises(InfraError, match="no-such-tool-here could not start"):
        runner.run(["no-such-tool-here"], check=False)


def test_call_returns_a_failed_run_for_the_caller_to_read() -> None:
    done = runner.call(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert (done.returncode, done.stdout, done.stderr) == (4, "out\n", "err\n")
    with pytest.raises(KubeError, match=r"^sh -c exit 4 exited 4 \(nothing was changed\)$"):
        raise runner.failure(runner.call(["sh", "-c", "exit 4"]), KubeError, "nothing was changed")


def test_uncaptured_output_goes_to_this_process(capfd: pytest.CaptureFixture[str]) -> None:
    assert runner.run(["sh", "-c", "echo shown; echo also >&2"], capture=False) == ""
    assert capfd.readouterr() == ("shown\n", "also\n")
    with pytest.raises(InfraError, match=r"^sh -c exit 2 exited 2$"):
        runner.run(["sh", "-c", "exit 2"], capture=False)


def test_stdin_and_env_reach_the_tool_and_never_the_message() -> None:
    script = 'read secret; echo "$TOKEN" >/dev/null; exit 1'
    with pytest.raises(InfraError) as info:
        runner.run(["sh", "-c", script], stdin="hunter2\n", env={"TOKEN": "hunter3"})
    assert "hunter" not in str(info.value)
    assert runner.run(["sh", "-c", "cat; echo $X"], stdin="in\n", env={"X": "x"}) == "in\nx\n"
