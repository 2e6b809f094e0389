"""Secret env vars from mounted files (``PREVIEW_SECRETS_DIR``), and rotation without a manual restart.

In ``external-secrets`` mode the Secret the operator syncs from Vault is mounted as a volume, one
file per secret env var (``REDIS_URL``, ``PREVIEW_API_TOKENS``, ``AWS_ACCESS_KEY_ID``, …). The
kubelet rewrites such a volume atomically when the Secret changes (env vars from a Secret never
change in a running container). At start, :func:`overlay_environ` puts the files' values into
the environment, before settings are read, so every consumer of a secret (settings, botocore's
credential chain) sees them the one way it already reads them.

:class:`Watcher` polls the files. When they change, and the new values pass the same settings
validation, it asks the process to stop the way SIGTERM does (stop fetching, drain the jobs in
flight, finish the HTTP requests in flight), and the command then re-executes itself
(:func:`reexec`): same PID, same container, no crash-loop backoff, the new values read at start.
New values that fail validation are refused with the keys named (never the values), and the
process keeps running with the old ones.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from worker import constants as c
from worker import logs

log = logs.get("secrets")
#: How often the files are compared (the kubelet's own sync of a Secret volume takes up to a minute).
POLL_SECONDS = 2.0
#: A secret file is a URL, a few tokens or a key: anything larger is refused, not read.
MAX_FILE_BYTES = 64 * 1024


#: The environment's own value of each variable a file replaced (None: it had none), for :func:`reexec`.
_overlaid: dict[str, str | None] = {}


class SecretFileError(ValueError):
    """A secret file that cannot be used; the message names the file, never its content."""


def read(folder: Path) -> dict[str, str]:
    """``{env var: value}`` for each secret env var with a file in ``folder`` (other files ignored)."""
    values: dict[str, str] = {}
    for name in sorted(c.SECRET_ENV_VARS):
        path = folder / name
        try:
            with path.open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise SecretFileError(f"{path}: cannot be read ({err.strerror})") from None
        if len(data) > MAX_FILE_BYTES:
            raise SecretFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        try:
            values[name] = data.decode().rstrip("\r\n")
        except UnicodeDecodeError:
            raise SecretFileError(f"{path}: not UTF-8") from None
    return values


def digest(values: Mapping[str, str]) -> str:
    return hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()


def folder_of(env: Mapping[str, str]) -> Path | None:
    raw = env.get(c.ENV_SECRETS_DIR, "")
    return Path(raw) if raw else None


def overlay_environ(env: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put the secret files' values into ``env`` (os.environ); exit 2 naming a bad file."""
    env = os.environ if env is None else env
    folder = folder_of(env)
    if folder is None:
        return {}
    if not folder.is_dir():
        print(f"invalid setting {c.ENV_SECRETS_DIR}={str(folder)!r}: not a directory", file=sys.stderr)
        raise SystemExit(2)
    try:
        values = read(folder)
    except SecretFileError as err:
        print(f"invalid setting {c.ENV_SECRETS_DIR}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    _overlaid.update({k: env.get(k) for k in values if k not in _overlaid})
    env.update(values)
    return values


def problems(values: Mapping[str, str]) -> list[str]:
    """What the settings would refuse in ``values`` (keys named, values never shown)."""
    from worker.settings import Settings, describe, env_of

    known = {env_of(field) for field in Settings.model_fields}
    given: dict[str, Any] = {k: v for k, v in values.items() if k in known}  # over the env's
    try:
        Settings(**given)
    except ValidationError as err:
        return describe(err)
    return []


class Watcher:
    """Polls the secret files; on a valid change, stops the process gracefully (SIGTERM to itself)."""

    def __init__(self, folder: Path, started_with: Mapping[str, str], poll: float = POLL_SECONDS) -> None:
        self.folder, self.poll = folder, poll
        self.seen = digest(started_with)
        self.rotated = threading.Event()
        self._refused: list[str] = []  # what was last refused: said once, not every poll
        self._thread = threading.Thread(target=self._run, name="secret-files", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def _refuse(self, problems: list[str]) -> bool:
        if problems != self._refused:
            log.error("rotated secret refused, keeping the running values", extra={"problems": problems})
            self._refused = problems
        return False

    def check(self) -> bool:
        """Compare once; True when a valid change was found and the stop was requested."""
        try:
            values = read(self.folder)
        except SecretFileError as err:
            return self._refuse([str(err)])
        now = digest(values)
        if now == self.seen:  # unchanged, or back to the running values
            self._refused = []
            return False
        refused = problems(values)
        if refused:
            return self._refuse(refused)
        self.seen = now
        log.info("secrets rotated: draining, then restarting with the new values",
                 extra={"keys": sorted(values)})  # fmt: skip
        self.rotated.set()
        os.kill(os.getpid(), signal.SIGTERM)
        return True

    def _run(self) -> None:
        while True:
            time.sleep(self.poll)
            if self.check():
                return


def start_watcher(started_with: Mapping[str, str]) -> Watcher | None:
    """A running :class:`Watcher` when ``PREVIEW_SECRETS_DIR`` is set, else None."""
    folder = folder_of(os.environ)
    return Watcher(folder, started_with).start() if folder is not None else None


def rotated(watcher: Watcher | None) -> bool:
    """Whether ``watcher`` (None: no secrets folder) asked the process to stop for a rotation."""
    return watcher is not None and watcher.rotated.is_set()


def reexec() -> None:
    """Replace this process with a fresh run of the same command (it re-reads the files)."""
    log.info("re-executing with the rotated secrets", extra={"argv": sys.argv[1:]})
    env = dict(os.environ)
    for name, original in _overlaid.items():  # the new process reads the files afresh
        if original is None:
            env.pop(name, None)
        else:
            env[name] = original
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "worker", *sys.argv[1:]], env)
