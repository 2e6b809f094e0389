"""Running an external tool: the one place that turns its failure into an error naming the command.

Every command the deployment half runs to completion (buildah, skopeo, pulumi, kubectl,
openssl, go, git) goes through :func:`run`. A non-zero exit, a timeout or a binary that cannot
start raises the caller's own error class from ``infra/errors.py``, with the command line and the
tail of what it printed, and with ``argv``, ``returncode`` and ``output`` set on the error.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from infra.errors import InfraError

TAIL_LINES = 15


def run(
    argv: Sequence[str],
    *,
    error: type[InfraError] = InfraError,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdin: str | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> str:
    """Run ``argv`` to completion and return its stdout (stderr is kept apart from it).

    ``check=False`` returns the stdout of a failed run too; a timeout or a binary that cannot
    start raises either way.
    """
    command = " ".join(argv)
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, env=env, cwd=cwd,
            timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise _failed(error, f"{command} did not finish within {timeout:g}s", argv, None, "") from None
    except OSError as exc:
        raise _failed(error, f"{command} could not start: {exc.strerror or exc}", argv, None, "") from None
    if check and done.returncode != 0:
        output = done.stdout + done.stderr
        tail = "\n".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-TAIL_LINES:])
        raise _failed(error, f"{command} exited {done.returncode}:\n{tail}", argv, done.returncode, output)
    return done.stdout


def _failed(
    error: type[InfraError], message: str, argv: Sequence[str], returncode: int | None, output: str
) -> InfraError:
    exc = error(message)
    exc.argv, exc.returncode, exc.output = list(argv), returncode, output  # type: ignore[attr-defined]
    return exc
