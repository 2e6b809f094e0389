"""The client's configuration: explicit arguments, checked once; the environment only on request.

:class:`ClientConfig` takes every option as an argument. :meth:`ClientConfig.from_env` reads the
same variables the worker reads (``REDIS_URL``, ``PREVIEW_QUEUE_NAME``, …, named in
:mod:`mobius_preview_client.names`), for a producer that shares the worker's environment; a bad
value is refused with the variable's name, never its value when it is the URL (it holds passwords).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mobius_preview_client import connections
from mobius_preview_client import names as n
from mobius_preview_client.errors import ConfigError

#: Each option :meth:`ClientConfig.from_env` reads, and its variable.
ENV = {
    "redis_url": n.ENV_REDIS_URL,
    "queue_name": n.ENV_QUEUE_NAME,
    "queue_max": n.ENV_QUEUE_MAX,
    "job_attempts": n.ENV_JOB_ATTEMPTS,
    "backoff_ms": n.ENV_BACKOFF_MS,
    "max_inline_bytes": n.ENV_MAX_INLINE_BYTES,
    "path_sources": n.ENV_PATH_SOURCES,
}
#: The integer options and their bounds (the worker's own, from names.py).
_BOUNDS = {
    "queue_max": (1, n.QUEUE_MAX_MAX),
    "job_attempts": (1, n.JOB_ATTEMPTS_MAX),
    "backoff_ms": (0, n.BACKOFF_MS_MAX),
    "max_inline_bytes": (0, n.INLINE_BYTES_MAX),
}


@dataclass(frozen=True)
class ClientConfig:
    """Where the queue is and the worker's rules the client applies at enqueue.

    ``queue_max``, ``job_attempts``, ``backoff_ms``, ``max_inline_bytes`` and ``path_sources``
    should be the worker's (its ``PREVIEW_*`` settings); the defaults are the worker's defaults.
    ``max_inline_bytes=0`` skips the inline-size check at enqueue (the worker checks it anyway).
    ``patient`` rides out a Redis restart instead of failing fast.
    """

    redis_url: str
    queue_name: str = n.QUEUE_NAME_DEFAULT
    prefix: str = n.BULL_PREFIX
    queue_max: int = n.QUEUE_MAX_DEFAULT
    job_attempts: int = n.JOB_ATTEMPTS_DEFAULT
    backoff_ms: int = n.BACKOFF_MS_DEFAULT
    max_inline_bytes: int = n.INLINE_BYTES_MAX_DEFAULT
    path_sources: bool = True
    patient: bool = False

    def __post_init__(self) -> None:
        for option, message in self._problems():
            raise ConfigError(f"{option}: {message}")

    def _problems(self) -> list[tuple[str, str]]:
        found = []
        if problem := redis_url_problem(self.redis_url):
            found.append(("redis_url", problem))
        for option, pattern in (("queue_name", n.QUEUE_NAME_PATTERN), ("prefix", n.PREFIX_PATTERN)):
            value = getattr(self, option)
            if not isinstance(value, str) or not re.fullmatch(pattern, value):  # fullmatch: no "x\n"
                found.append((option, "must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit"))
        for option, (low, high) in _BOUNDS.items():
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                found.append((option, f"must be an integer from {low} to {high}"))
        for option in ("path_sources", "patient"):
            if not isinstance(getattr(self, option), bool):
                found.append((option, "must be True or False"))
        return found

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientConfig:
        """The options from ``environ`` (default ``os.environ``), where set; ``overrides`` win.

        Raises :class:`ConfigError` naming the variable of a bad value; ``REDIS_URL`` is required.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for option, name in ENV.items():
            if option in overrides or name not in env:
                continue
            try:
                values[option] = _parse(option, env[name])
            except ConfigError as err:
                raise ConfigError(f"{name}: {err}") from None
        values.update(overrides)
        if "redis_url" not in values:
            raise ConfigError(f"{n.ENV_REDIS_URL} is not set (or pass redis_url=)")
        try:
            return cls(**values)
        except ConfigError as err:
            option = str(err).split(":", 1)[0]
            if option in ENV and option not in overrides:
                raise ConfigError(f"{ENV[option]}: {str(err).split(': ', 1)[1]}") from None
            raise


def _parse(option: str, text: str) -> Any:
    if option == "path_sources":
        if text not in ("on", "off"):
            raise ConfigError("must be on or off")
        return text == "on"
    if option in _BOUNDS:
        low, high = _BOUNDS[option]
        if not re.fullmatch(r"[0-9]{1,12}", text.strip()):
            raise ConfigError(f"must be an integer from {low} to {high}, got {text[:40]!r}")
        return int(text)
    return text


def redis_url_problem(url: Any) -> str:
    """Why ``url`` is no Redis URL ("" when it is one); never echoes it (it may hold a password).

    The one check of a Redis URL: the worker's ``REDIS_URL`` setting uses it too."""
    if not isinstance(url, str):
        return "must be a redis://, rediss://, unix:// or redis+sentinel:// URL"
    try:
        if connections.parse_sentinel(url) is None:
            parts = urlsplit(url)
            if parts.scheme not in ("redis", "rediss", "unix"):
                return "must be a redis://, rediss://, unix:// or redis+sentinel:// URL"
            if parts.scheme != "unix" and not parts.hostname:
                return "has no host"
            _ = parts.port  # ValueError for a port out of range or not a number
        connections.check_ca_file(url)
    except ValueError as err:
        return str(err)
    return ""
