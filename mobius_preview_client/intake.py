"""Every job read back from Redis, whoever wrote it, passes the one JSON gate here.

The API and the client (:mod:`mobius_preview_client.client`) only write jobs that passed
:func:`mobius_preview_client.contract.validation.parse`; a Node.js producer or a raw ``HSET`` may write
anything. :func:`from_raw` reads a job hash as bullmq's ``Job.fromJSON`` does, but its ``data``
and ``opts`` through that same gate (UTF-8 only, finite numbers, no lone surrogates, bounded
size and depth). A job that fails it, or whose other fields bullmq cannot read, still becomes a
``Job`` (so it can be failed and dead-lettered like any other) with :class:`Poison` attached:
why, and its raw bytes, bounded, for the DLQ entry.

Replies are decoded with ``surrogateescape`` (:mod:`mobius_preview_client.connections`), so bytes that
are not UTF-8 reach this module intact and :func:`raw_bytes` gives them back exactly.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from bullmq import Job
from bullmq.backoffs import Backoffs
from bullmq.job import getReturnValue, optsDecodeMap, optsFromJSON

from mobius_preview_client import names as c
from mobius_preview_client.contract import validation
from mobius_preview_client.errors import InvalidJobError


@dataclass(frozen=True)
class Poison:
    """Why a job cannot be read, and its raw ``data`` and ``opts`` (bounded) for the DLQ."""

    reason: str
    raw: dict[str, Any]


def raw_bytes(value: str | bytes) -> bytes:
    """The bytes Redis holds for a field decoded with ``surrogateescape``."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def kept(value: str | bytes) -> dict[str, Any]:
    """A field's raw bytes as a DLQ entry keeps them: size, digest and the first bytes, base64."""
    data = raw_bytes(value)
    head = data[: c.DLQ_RAW_KEEP_BYTES]
    return {
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "base64": base64.b64encode(head).decode("ascii"),
        "truncated": len(head) < len(data),
    }


def from_raw(queue: Any, raw: dict[str, Any], job_id: str | None, max_data_bytes: int | None) -> Job:
    """A ``Job`` from its hash; ``job.poison`` is a :class:`Poison` when it fails the gate, else None."""
    try:
        data = validation.parse(raw.get("data", "{}"), max_data_bytes)
    except InvalidJobError as err:
        return _poisoned(queue, raw, job_id, f"data {err.violations[0].message}")
    try:
        opts = validation.parse(raw.get("opts", "{}"), c.JOB_OPTS_MAX_BYTES)
        if not isinstance(opts, dict):
            return _poisoned(queue, raw, job_id, "opts is not a JSON object")
        wrong = _wrong_option(opts)
        if wrong:
            return _poisoned(queue, raw, job_id, wrong)
        job = _job(queue, raw, job_id, opts)
    except InvalidJobError as err:
        return _poisoned(queue, raw, job_id, f"opts {err.violations[0].message}")
    except Exception as err:  # progress, stacktrace, parent, an option bullmq cannot take …
        return _poisoned(queue, raw, job_id, f"bullmq cannot read the job: {type(err).__name__}: {err}"[:300])
    job.data = data
    job.poison = None
    # Read back into the status document: what a producer wrote there must not break it either.
    job.progress = job.progress if _storable(job.progress) else 0
    job.returnvalue = job.returnvalue if _storable(job.returnvalue) else None
    job.failedReason = _text(job.failedReason) if job.failedReason else None
    return job


#: Options whose handling in ``Job.__init__`` is more than a copy (parent links and the checks
#: between them): a job with any of them is built by bullmq's own ``Job.fromJSON``.
_LINKED_OPTIONS = frozenset({
    "parent", "failParentOnFailure", "continueParentOnFailure", "ignoreDependencyOnFailure",
    "removeDependencyOnFailure",
})  # fmt: skip
#: The short names bullmq stores some options under (``kl`` for ``keepLogs``), which ``optsFromJSON``
#: renames; options without any are copied by it unchanged.
_SHORT_OPTIONS = frozenset(optsDecodeMap)


def _job(queue: Any, raw: dict[str, Any], job_id: str | None, opts: dict[str, Any]) -> Job:
    """The ``Job`` that bullmq's ``Job.fromJSON(queue, {**raw, "data": "null"}, job_id)`` makes, from
    ``opts`` already parsed by the gate: the same attributes, set without ``fromJSON``'s second
    parse of the options, its parse of the data and the general ``Job.__init__`` (the whole read
    went from 16.4 to 8.1 µs a job, #34). A job with parent links, or no id, is left to bullmq;
    ``tests/worker/queue/test_intake_job.py`` checks the two agree on every attribute."""
    if not _SHORT_OPTIONS.isdisjoint(opts):  # else optsFromJSON's copy is the same dict
        opts = optsFromJSON(opts)
    if not job_id or not _LINKED_OPTIONS.isdisjoint(opts):
        return Job.fromJSON(queue, {**raw, "data": "null"}, job_id)
    get = raw.get
    progress, stacktrace, returnvalue = get("progress"), get("stacktrace"), get("returnvalue")
    dedup = opts.get("deduplication")
    job: Job = Job.__new__(Job)
    # The attributes as one dict literal, not keyword arguments to ``vars(job).update`` (#34).
    job.__dict__ = {
        "name": get("name"),
        "id": job_id,
        "progress": 0 if progress is None else json.loads(progress),
        "timestamp": int(get("timestamp", "0")),
        "discarded": False,
        "opts": {"attempts": 0, "delay": 0, **opts, "backoff": Backoffs.normalize(opts.get("backoff"))},
        "queue": queue,
        "delay": int(get("delay", "0")),
        "priority": int(get("priority", "0")),
        "attempts": opts.get("attempts", 1),
        "attemptsMade": int(get("attemptsMade") or get("atm") or "0"),
        "attemptsStarted": int(raw["ats"]) if get("ats") else 0,
        "stalledCounter": int(get("stc") or "0"),
        "data": None,
        "removeOnComplete": opts.get("removeOnComplete", True),
        "removeOnFail": opts.get("removeOnFail", False),
        "processedOn": int(raw["processedOn"]) if get("processedOn") else 0,
        "finishedOn": int(raw["finishedOn"]) if get("finishedOn") else 0,
        "returnvalue": getReturnValue(returnvalue) if type(returnvalue) is str else None,
        "deferredFailure": get("defa") or None,
        "failedReason": get("failedReason") or None,
        "repeatJobKey": get("rjk") or None,
        "token": None,
        "parentKey": get("parentKey") or None,
        "parent": json.loads(raw["parent"]) if get("parent") else None,
        "stacktrace": [] if stacktrace is None else json.loads(stacktrace),
        "deduplication_id": dedup.get("id") if dedup and isinstance(dedup, dict) else None,
        "backend": queue.backend,
        "queueQualifiedName": queue.qualifiedName,
    }
    return job


#: The options bullmq computes with while it finishes a job, and the JSON types it needs them in:
#: any other type would make failing or completing the job raise, leaving it active until it stalls.
_NUMBER = (int, float)
_KEEP = (bool, int, dict)
_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "attempts": (int,), "delay": _NUMBER, "priority": _NUMBER, "timestamp": _NUMBER, "lifo": (bool,),
    "stackTraceLimit": (int,), "keepLogs": (int,), "kl": (int,), "backoff": (int, dict),
    "removeOnComplete": _KEEP, "removeOnFail": _KEEP,
}  # fmt: skip
_NESTED_TYPES: dict[str, dict[str, tuple[type, ...]]] = {
    "backoff": {"delay": _NUMBER},
    "removeOnComplete": {"age": _NUMBER, "count": _NUMBER},
    "removeOnFail": {"age": _NUMBER, "count": _NUMBER},
}


_BACKOFF_TYPES = ("fixed", "exponential")  # bullmq's own; this worker registers no custom one
_BACKOFF_DELAY_MAX_MS = 2**31


def _wrong_option(opts: dict[str, Any]) -> str | None:
    """Why bullmq could not finish a job with these options, or None."""
    for name, types in _OPTION_TYPES.items():
        value: Any = opts.get(name)
        if value is None:
            continue
        if not isinstance(value, types):
            return f"opts.{name} is {_kind(value)}, not what BullMQ takes"
        nested: dict[str, Any] = value if isinstance(value, dict) else {}
        for key, inner in _NESTED_TYPES.get(name, {}).items():
            if key in nested and not isinstance(nested[key], inner):
                return f"opts.{name}.{key} is {_kind(nested[key])}, not what BullMQ takes"
    backoff = opts.get("backoff")
    if isinstance(backoff, dict):
        if backoff.get("type") not in _BACKOFF_TYPES:
            return f"opts.backoff.type is not one of {', '.join(_BACKOFF_TYPES)}"
        if not 0 <= backoff.get("delay", 0) <= _BACKOFF_DELAY_MAX_MS:  # 2**attempts times it must fit
            return f"opts.backoff.delay is not between 0 and {_BACKOFF_DELAY_MAX_MS} ms"
    return None


def _kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}
    return kinds.get(type(value), "an object")


def _poisoned(queue: Any, raw: dict[str, Any], job_id: str | None, reason: str) -> Job:
    job = Job(queue, _text(raw.get("name")), None, {}, job_id)
    if job.id is None:
        job.id = _text(raw.get("id"))
    job.attemptsMade = _int(raw.get("atm") or raw.get("attemptsMade"))
    job.timestamp = _int(raw.get("timestamp"))
    job.processedOn = _int(raw.get("processedOn"))
    job.finishedOn = _int(raw.get("finishedOn"))
    failed = raw.get("failedReason")
    job.failedReason = _text(failed) if failed else None
    fields = {name: kept(raw[name]) for name in ("data", "opts") if isinstance(raw.get(name), str | bytes)}
    job.poison = Poison(f"cannot be read: {reason}", fields)
    return job


def _text(value: Any) -> str:
    """A field as text fit to log and store as JSON (undecodable bytes replaced)."""
    if value is None:
        return ""
    return raw_bytes(value).decode("utf-8", "replace") if isinstance(value, str | bytes) else str(value)


def _storable(value: Any) -> bool:
    """Whether ``value`` writes back out as strict JSON in UTF-8 (no NaN, no lone surrogate)."""
    if value is None or type(value) is int:  # a new job's progress and return value: no need to ask
        return True
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError):
        return False
    return True


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
