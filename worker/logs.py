"""JSON-lines logging: one object per line, one line per job event.

Values of secret env vars (``REDIS_URL``) and any URL password are scrubbed
from every line before it is written, whatever code produced the message.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import re
import sys
import time
from typing import Any

from worker import constants as c
from worker.passes import at_pass_end

LOGGER_NAME = "worker"
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", re.I)
_STD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
#: A record's own attributes come first in its ``__dict__``; ``extra=`` fields follow them.
_OWN_ATTRS = len(vars(logging.makeLogRecord({})))
#: Keys a line's own fields take, and the record's attributes: never an ``extra=`` field of a fast line.
_TAKEN = frozenset({"ts", "level", "logger", "msg"}) | _STD_ATTRS
#: How ``_ENCODER`` writes a string (``ensure_ascii``), used by :func:`_json` for the same bytes.
_STRING = json.encoder.encode_basestring_ascii


def secret_values() -> tuple[str, ...]:
    """The values of the secret env vars worth scrubbing (six characters or more)."""
    values = (os.environ.get(name) for name in c.SECRET_ENV_VARS)
    return tuple(v for v in values if v and len(v) >= 6)


def scrub(text: str, secrets: tuple[str, ...] | None = None) -> str:
    """Remove secrets from ``text``: URL passwords and the values of secret env vars.

    ``secrets`` defaults to the env vars' values now; the formatter passes those it read at start.
    """
    if "@" in text:  # every URL with a password has one
        text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    for value in secret_values() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, "<redacted>")
    return text


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; ``extra=`` fields become keys.

    The secret env vars are read when the formatter is made (at start, by :func:`setup`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets = secret_values()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in itertools.islice(vars(record).items(), _OWN_ATTRS, None):
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return scrub(_ENCODER.encode(entry), self.secrets)


class PassHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes the lines of one event-loop pass together, then flushes.

    At concurrency 50 a pass finishes many jobs, and a write and flush per line cost more than
    formatting it. Outside a running loop (start-up, threads, exit) a line is written at once,
    and :meth:`flush` (called by ``logging.shutdown`` at exit) writes whatever is pending, so
    only a SIGKILL can lose lines: those of the pass it interrupts.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.pending: list[str] = []
        self.scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._queue(line)

    def write_line(self, line: str) -> None:
        """Queue one line formatted by the caller (:func:`info`), as :meth:`emit` queues a record's."""
        with self.lock or contextlib.nullcontext():
            self._queue(line)

    def _queue(self, line: str) -> None:
        self.pending.append(line)
        if not self.scheduled:
            self.scheduled = True
            at_pass_end(self.flush)

    def flush(self) -> None:
        with self.lock or contextlib.nullcontext():
            self.scheduled = False
            if self.pending:
                lines, self.pending = self.pending, []
                self.stream.write("\n".join(lines) + "\n")
            super().flush()


def info(logger: logging.Logger, msg: str, fields: dict[str, Any]) -> None:
    """``logger.info(msg, extra=fields)``: the same line, made without the logging module's record,
    handler chain and JSON encoder when :func:`setup`'s handler is the only one the record would
    reach (9 µs a line → about 2 µs, #34: the consumer writes one per job). Otherwise, or when a
    field is not a plain JSON value, ``logger.info`` itself.
    """
    handler = _sole_handler(logger)
    if handler is None or not _TAKEN.isdisjoint(fields):
        logger.info(msg, extra=fields)
        return
    if not logger.isEnabledFor(logging.INFO):
        return
    try:
        parts = [f'{{"ts":{_json(round(time.time(), 3))},"level":"info","logger":{_STRING(logger.name)}',
                 f',"msg":{_STRING(msg)}']  # fmt: skip
        parts += [f",{_STRING(key)}:{_json(value)}" for key, value in fields.items() if key[:1] != "_"]
    except (_NotPlain, TypeError):  # TypeError: a key that is not a string
        logger.info(msg, extra=fields)
        return
    parts.append("}")
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)
    handler.write_line(scrub("".join(parts), formatter.secrets))


class _NotPlain(Exception):
    """A value :func:`_json` leaves to the JSON encoder."""


def _json(value: Any) -> str:
    """``value`` as ``_ENCODER`` writes it, for a string, an int, a finite float, a boolean or None."""
    kind = type(value)
    if kind is str:
        return _STRING(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if kind is bool or value is None:
        return "true" if value is True else "false" if value is False else "null"
    raise _NotPlain


def _sole_handler(logger: logging.Logger) -> PassHandler | None:
    """The handler ``logger``'s records reach, if it is only a :class:`PassHandler` with a
    :class:`JsonFormatter` and no filter or record factory of anyone else's is on the way; else None."""
    if (
        logger.filters
        or logger.disabled
        or logging.getLogRecordFactory() is not logging.LogRecord
        or logging.getLevelName(logging.INFO) != "INFO"
    ):
        return None
    found: list[logging.Handler] = []
    node: logging.Logger | None = logger
    while node is not None:
        found += node.handlers
        node = node.parent if node.propagate else None
    if len(found) != 1:
        return None
    handler = found[0]
    if type(handler) is not PassHandler or handler.filters or handler.level > logging.INFO:
        return None
    return handler if type(handler.formatter) is JsonFormatter else None


def setup(level: str = "INFO") -> logging.Logger:
    """Route the ``worker`` logger (and bullmq's) to stdout as JSON lines."""
    # No line shows the caller, thread or process, so the logging module need not look them up
    # (its documented optimisations; this runs once per job on the hot path).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = PassHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    return logging.getLogger(LOGGER_NAME)


def get(name: str = "") -> logging.Logger:
    """The worker's logger, or a child of it."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)
