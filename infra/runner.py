"""Running an external tool: the one place that turns its failure into an error naming the command.

Every command the deployment half runs to completion (buildah, skopeo, pulumi, kubectl,
openssl, go, git, gh, umount) goes through this module: :func:`run` when a failure is an error,
:func:`call` when the caller reads the exit status itself (``git rev-parse --verify``, say).
A non-zero exit (with :func:`run`), a timeout or a binary that cannot start raises the caller's
own error class from ``infra/errors.py``, with the command line and the tail of what it printed,
and with ``argv``, ``returncode`` and ``output`` set on the error.

Secrets never go on a command line (it is in every error message): pass them with ``stdin``
or ``env``, which no message repeats (``python -m infra ci registry-login`` does).

Four modules start processes themselves, because the process does not fit "run, wait, read
its output", each saying why at the call:
``infra/tools/local/procs.py`` (detached daemons with pid files),
``infra/tools/image/registry_server.py`` (a registry served for a ``with`` block),
``infra/tools/image/rootfs.py`` (``tar`` streamed through gzip) and
``infra/tools/local/toolchain/gosource.py`` (a long build logged to a file with a heartbeat).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from infra.errors import InfraError

TAIL_LINES = 15
#: A finished command: ``args``, ``returncode``, ``stdout``, ``stderr`` (both ``""`` when not captured).
Done = subprocess.CompletedProcess[str]


def call(
    argv: Sequence[str],
    *,
    error: type[InfraError] = InfraError,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdin: str | None = None,
    timeout: float | None = None,
    capture: bool = True,
) -> Done:
    """Run ``argv`` to completion and return it finished, whatever its exit status.

    ``capture=False`` lets the tool print straight to this process's stdout and stderr (a CI
    log shows it as it runs); the result's ``stdout`` and ``stderr`` are then empty. A timeout
    or a binary that cannot start raises ``error``.
    """
    command = " ".join(argv)
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=capture, text=True, env=env, cwd=cwd,
            timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise _failed(error, f"{command} did not finish within {timeout:g}s", argv, None, "") from None
    except OSError as exc:
        raise _failed(error, f"{command} could not start: {exc.strerror or exc}", argv, None, "") from None
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout or "", done.stderr or "")


def run(
    argv: Sequence[str],
    *,
    error: type[InfraError] = InfraError,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdin: str | None = None,
    timeout: float | None = None,
    check: bool = True,
    capture: bool = True,
    hint: str = "",
) -> str:
    """Run ``argv`` to completion and return its stdout (stderr is kept apart from it).

    ``check=False`` returns the stdout of a failed run too; a timeout or a binary that cannot
    start raises either way. ``hint`` is added to the message of a failure (what to do next).
    """
    done = call(argv, error=error, env=env, cwd=cwd, stdin=stdin, timeout=timeout, capture=capture)
    if check and done.returncode != 0:
        raise failure(done, error, hint)
    return done.stdout


def failure(done: Done, error: type[InfraError], hint: str = "") -> InfraError:
    """The error for ``done``'s non-zero exit: the command, its status, the tail of its output."""
    argv = [str(arg) for arg in done.args]
    tail = "\n".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-TAIL_LINES:])
    message = f"{' '.join(argv)} exited {done.returncode}" + (f" ({hint})" if hint else "")
    output = done.stdout + done.stderr
    return _failed(error, f"{message}:\n{tail}" if tail else message, argv, done.returncode, output)


def _failed(
    error: type[InfraError], message: str, argv: Sequence[str], returncode: int | None, output: str
) -> InfraError:
    exc = error(message)
    exc.argv, exc.returncode, exc.output = list(argv), returncode, output  # type: ignore[attr-defined]
    return exc
