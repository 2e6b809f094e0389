"""The job API's routes, declared once: the app serves them and the OpenAPI 3.1 description is made from them.

Each :class:`Operation` names its handler and every answer it may give, each with the typed
document (:mod:`worker.api.answers`, :mod:`mobius_preview_client.contract.documents`) its body is. The request
body of ``POST /job`` is the job schema itself (``schemas/preview-job.schema.json``). A guarded
handler's scope comes from its :func:`~worker.api.handlers.requires`, and brings the 401 and
403 answers with it. ``GET /api/preview/openapi.json`` serves the description, and
``python -m worker.api.openapi --write`` writes it to ``schemas/openapi.json``, from which the npm
package's types are generated (``tests/worker/api/test_api_openapi.py`` fails while it is stale,
and calls every route with every answer it documents).
"""

from __future__ import annotations

import argparse
import copy
import functools
import inspect
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mobius_preview_client.contract import documents as d
from mobius_preview_client.contract import validation
from worker import constants as c
from worker.api import answers as a
from worker.api import handlers as h
from worker.queue.queues import retry_policy
from worker.tunables import Tunables

PREFIX = c.API_PATH_PREFIX
#: Where the description is served (open: it holds the contract, nothing of a deployment).
OPENAPI_PATH = f"{PREFIX}/openapi.json"
#: Where the description is committed, for the npm package's generator.
OPENAPI_FILE = "schemas/openapi.json"
#: The repository (the committed description's folder is ``schemas/``, beside the job schema).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The version of the API described (bumped when an answer changes incompatibly).
API_VERSION = "1.0.0"
JSON = "application/json"
IMAGES = ("image/webp", "image/png", "image/jpeg")


@dataclass(frozen=True)
class Answer:
    """One documented answer: what it means, its body's type (or media types of raw bytes), headers."""

    description: str
    body: Any = None
    media: tuple[str, ...] = (JSON,)
    headers: tuple[str, ...] = ()


RETRY = ("Retry-After",)
NOT_FOUND = Answer("No such job, artifact set or rendition (an unsafe id is never looked up).", a.ApiError)
REDIS_DOWN = Answer("Redis is unreachable.", a.ApiError, headers=RETRY)
STORE_DOWN = Answer("The artifact store is unreachable.", a.ApiError, headers=RETRY)


@dataclass(frozen=True)
class Operation:
    """One route: method, path (Starlette's template), its handler and every answer it gives."""

    method: str
    path: str
    handler: h.Handler | None  # None: the route is built by the app (``/metrics``, on its registry)
    summary: str
    answers: Mapping[int, Answer]
    body: bool = False
    name: str | None = None
    tags: tuple[str, ...] = field(default=("jobs",))


async def serve_openapi(_: Request) -> Response:
    """``GET /api/preview/openapi.json``: this description."""
    return JSONResponse(document())


# fmt: off
OPERATIONS: tuple[Operation, ...] = (
    Operation("POST", f"{PREFIX}/job", h.enqueue, "Validate and enqueue a preview job", {
        201: Answer("Enqueued.", a.Enqueued),
        200: Answer("A job with this jobId exists already: nothing was added.", a.AlreadyEnqueued),
        400: Answer("Not JSON, or not a valid job: every violation with its JSON path.", a.InvalidJob),
        413: Answer("The body is over PREVIEW_API_MAX_BODY_BYTES, or over the largest job the inline "
                    "cap allows.", a.ApiError),
        415: Answer("The Content-Type is not application/json.", a.ApiError),
        429: Answer("The queue holds PREVIEW_QUEUE_MAX unfinished jobs.", a.ApiError, headers=RETRY),
        503: Answer("Redis is unreachable, this process holds PREVIEW_API_BODY_BUDGET_BYTES of "
                    "request bodies already, or the process checking large bodies ended.", a.ApiError,
                    headers=RETRY),
    }, body=True),
    Operation("GET", f"{PREFIX}/job/{{job_id}}/status", h.status, "A job's state, attempts and progress", {
        200: Answer("The job's status.", d.JobStatus),
        404: NOT_FOUND,
        503: REDIS_DOWN,
    }),
    Operation("GET", f"{PREFIX}/job/{{job_id}}/artifact", h.manifest, "A job's artifact manifest", {
        200: Answer("The manifest, each rendition with the URL to download it from.", d.ArtifactManifest),
        404: NOT_FOUND,
        503: STORE_DOWN,
    }),
    Operation("GET", f"{PREFIX}/job/{{job_id}}/artifact/{{name}}", h.rendition, "One rendition's bytes", {
        200: Answer("The rendition (filesystem store).", media=IMAGES),
        307: Answer("Where to download it: a presigned, expiring URL (s3 store).", None, (), ("Location",)),
        404: NOT_FOUND,
        503: STORE_DOWN,
    }, name="rendition"),
    Operation("GET", f"{PREFIX}/queue/metrics", h.queue_metrics, "Job counts by state", {
        200: Answer("The queue's counts, its dead-letter queue's included.", a.QueueMetrics),
        503: REDIS_DOWN,
    }, tags=("queue",)),
    Operation("GET", c.API_HEALTH_PATH, h.health, "Health: Redis reachable, the queue's counts", {
        200: Answer("Healthy.", a.Healthy),
        503: Answer("Redis is unreachable.", a.Unhealthy),
    }, tags=("operations",)),
    Operation("GET", c.METRICS_PATH, None, "The API's Prometheus metrics", {
        200: Answer("Prometheus' text format.", media=("text/plain",)),
    }, tags=("operations",)),
    Operation("GET", OPENAPI_PATH, serve_openapi, "This description (OpenAPI 3.1)", {
        200: Answer("The OpenAPI document.", media=(JSON,)),
    }, tags=("operations",)),
)
# fmt: on


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    answers = dict(op.answers)
    scope = h.scope_of(op.handler) if op.handler is not None else None
    if scope is not None:
        challenge = ("WWW-Authenticate",)
        answers[401] = Answer("No valid bearer token.", a.ApiError, headers=challenge)
        answers[403] = Answer(f"The token may not {scope}.", a.ApiError)
    doc: dict[str, Any] = {
        "operationId": (op.handler.__name__ if op.handler else "metrics"),
        "summary": op.summary,
        "tags": list(op.tags),
        "responses": {str(code): _answer(answers[code], schemas) for code in sorted(answers)},
    }
    if op.handler is not None and op.handler.__doc__:
        # cleandoc: the same text on every Python (3.13 strips docstring indentation when compiling).
        doc["description"] = _markdown(inspect.cleandoc(op.handler.__doc__))
    params = [p.strip("{}") for p in op.path.split("/") if p.startswith("{")]
    if params:
        doc["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
        ]
    doc["security"] = [{"bearer": []}] if scope else []
    if scope:
        doc["x-scope"] = scope
    if op.body:
        content = {JSON: {"schema": {"$ref": "#/components/schemas/PreviewJob"}}}
        doc["requestBody"] = {"required": True, "content": content}
    return doc


def _answer(answer: Answer, schemas: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.headers:
        out["headers"] = {name: {"schema": {"type": "string"}} for name in answer.headers}
    if answer.body is not None:
        out["content"] = {JSON: {"schema": _ref(answer.body, schemas)}}
    elif answer.media:
        raw = {"type": "string"} if answer.media != (JSON,) else {"type": "object"}
        out["content"] = {m: {"schema": raw} for m in answer.media}
    return out


def _ref(kind: Any, schemas: dict[str, Any]) -> dict[str, str]:
    """Put ``kind``'s JSON schema (and those it uses) into ``schemas``; a reference to it."""
    generated = TypeAdapter(kind).json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in {**generated.pop("$defs", {}), kind.__name__: generated}.items():
        schemas[name] = _tidy(sub)
    return {"$ref": f"#/components/schemas/{kind.__name__}"}


def _tidy(node: Any, top: bool = True) -> Any:
    """Closed objects (an undeclared key is drift), no per-property titles, Markdown descriptions."""
    if isinstance(node, list):
        return [_tidy(v, False) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _tidy(v, False) for k, v in node.items() if not (k == "title" and not top)}
    if "properties" in out:
        out.setdefault("additionalProperties", False)
    if isinstance(out.get("description"), str):
        out["description"] = _markdown(out["description"])
    return out


def _markdown(text: str) -> str:
    return text.replace("``", "`")


def _job_schemas() -> dict[str, Any]:
    """The job schema as components: ``PreviewJob`` and its ``PreviewJobOutput`` (its ``$defs.output``)."""
    job = copy.deepcopy(validation.schema())
    for key in ("$schema", "$id"):
        job.pop(key)
    output = job.pop("$defs")["output"]
    job["properties"]["outputs"]["items"] = {"$ref": "#/components/schemas/PreviewJobOutput"}
    return {"PreviewJob": job, "PreviewJobOutput": output}


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the job API (the same for every deployment)."""
    schemas = _job_schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    _ref(d.JobResult, schemas)  # not an answer of its own: the job's BullMQ return value
    defaults = Tunables()
    policy = retry_policy(defaults)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Preview worker job API",
            "version": API_VERSION,
            "description": (
                "Enqueue preview jobs, read their status and artifacts. Generated from "
                "`worker/api/openapi.py`: do not edit `schemas/openapi.json` by hand."
            ),
        },
        # How a BullMQ producer adds the jobs this API adds (the npm package's addPreviewJob defaults).
        "x-bullmq": {
            "queue": defaults.queue_name,
            "jobName": c.JOB_NAME,
            "attempts": policy["attempts"],
            "backoff": policy["backoff"],
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def text() -> str:
    """The description as committed in ``schemas/openapi.json``."""
    return json.dumps(document(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m worker.api.openapi [--write]``: print the description, or rewrite the committed file."""
    parser = argparse.ArgumentParser(prog="python -m worker.api.openapi", description=main.__doc__)
    parser.add_argument("--write", action="store_true", help=f"rewrite {OPENAPI_FILE}")
    args = parser.parse_args(argv)
    if args.write:
        (REPO_ROOT / OPENAPI_FILE).write_text(text(), encoding="utf-8")
    else:
        sys.stdout.write(text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
