"""The job API's OpenAPI 3.1 description against the real API.

Every documented route is called for every answer it documents (real Redis, the real consumer,
the filesystem store and MinIO for the s3 store's redirect, dead ports for the 503s), and each
answer's status, media type, headers and body must be what the description says. An answer the
description lacks, or one it documents that no call produced, fails the test.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import worker_media as media
from api_kit import JOB, api
from jsonschema import Draft202012Validator
from pydantic import SecretStr
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from store_kit import MinioServer, minio, s3_settings  # noqa: F401  (minio is a fixture)
from worker_kit import consumer, free_port, queues, wait_state

from worker import constants as c
from worker import store
from worker.api import openapi
from worker.api.app import create_app
from worker.render.registry import Rendition
from worker.settings import Settings

REPO = Path(__file__).resolve().parents[3]
DOC = openapi.document()
PREFIX = c.API_PATH_PREFIX
READER, WRITER = "read:reader-token-0123456789ab", "enqueue:writer-token-0123456789ab"
Call = Callable[[], Awaitable[httpx.Response]]


def test_the_committed_description_is_the_generated_one() -> None:
    committed = (REPO / openapi.OPENAPI_FILE).read_text()
    assert committed == openapi.text(), "stale: run `python -m worker.api.openapi --write`"


def test_the_app_serves_exactly_the_documented_routes(settings: Settings) -> None:
    app = create_app(settings)
    served = {(m, r.path) for r in app.routes for m in getattr(r, "methods", ()) if m != "HEAD"}
    documented = {(m.upper(), p) for p, ops in DOC["paths"].items() for m in ops}
    assert served == documented
    assert DOC["openapi"] == "3.1.0"
    assert DOC["x-bullmq"] == {
        "queue": "preview-jobs",
        "jobName": c.JOB_NAME,
        "attempts": 3,
        "backoff": {"type": "exponential", "delay": 1000},
    }


def _registry() -> Registry:  # type: ignore[type-arg]  # referencing.Registry is generic
    return Registry().with_resource("urn:openapi", DRAFT202012.create_resource(DOC))


def _schema_validator(ref: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"urn:openapi{ref}"}, registry=_registry())


class Checker:
    """Checks answers against the description and records which (path, method, status) were seen."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, path: str, method: str, reply: httpx.Response) -> None:
        status = str(reply.status_code)
        where = f"{method.upper()} {path} -> {status}"
        answers = DOC["paths"][path][method]["responses"]
        assert status in answers, f"{where}: not documented ({reply.text[:200]})"
        answer = answers[status]
        for header in answer.get("headers", {}):
            assert header in reply.headers, f"{where}: no {header} header"
        content = answer.get("content")
        if content is None:
            assert not reply.content or reply.status_code == 307, f"{where}: a body the description lacks"
        else:
            kind = reply.headers["content-type"].split(";")[0].strip()
            assert kind in content, f"{where}: {kind} is not one of {sorted(content)}"
            ref = content[kind]["schema"].get("$ref")
            if ref is not None:
                errors = [e.message for e in _schema_validator(ref).iter_errors(reply.json())]
                assert not errors, f"{where}: {errors} in {reply.text[:500]}"
        self.seen.add((path, method, status))

    async def call(self, path: str, method: str, client: httpx.AsyncClient, url: str, **kw: Any) -> None:
        reply = await client.request(method.upper(), url, **kw)
        self.check(path, method, reply)


def documented() -> set[tuple[str, str, str]]:
    return {(p, m, s) for p, ops in DOC["paths"].items() for m, op in ops.items() for s in op["responses"]}


JOB_PATH, STATUS = f"{PREFIX}/job", f"{PREFIX}/job/{{job_id}}/status"
MANIFEST, RENDITION = f"{PREFIX}/job/{{job_id}}/artifact", f"{PREFIX}/job/{{job_id}}/artifact/{{name}}"
COUNTS = f"{PREFIX}/queue/metrics"


async def test_every_documented_route_and_answer_against_the_real_api(
    settings: Settings,
    minio: MinioServer,  # noqa: F811
    worker_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = Checker()
    scoped = settings.model_copy(update={"api_tokens": SecretStr(f"{settings.api_tokens.get_secret_value()},"
                                                                 f"{READER},{WRITER}")})  # fmt: skip
    reader = {"Authorization": f"Bearer {READER.partition(':')[2]}"}
    writer = {"Authorization": f"Bearer {WRITER.partition(':')[2]}"}
    async with api(scoped) as client, queues(settings) as q, consumer(settings):
        await seen.call(JOB_PATH, "post", client, JOB_PATH, json={**JOB, "jobId": "doc-1"})  # 201
        await wait_state(q, "doc-1", "completed")
        await seen.call(JOB_PATH, "post", client, JOB_PATH, json={**JOB, "jobId": "doc-1"})  # 200
        await seen.call(JOB_PATH, "post", client, JOB_PATH, json={**JOB, "outputs": []})  # 400
        await seen.call(
            JOB_PATH, "post", client, JOB_PATH, content=b"{", headers={"Content-Type": "application/json"}
        )
        await seen.call(
            JOB_PATH, "post", client, JOB_PATH, content=b"{}", headers={"Content-Type": "text/plain"}
        )
        await seen.call(JOB_PATH, "post", client, JOB_PATH, json=JOB, headers={"Authorization": "Bearer no"})
        await seen.call(JOB_PATH, "post", client, JOB_PATH, json=JOB, headers=reader)  # 403
        for path, url in ((STATUS, "doc-1/status"), (MANIFEST, "doc-1/artifact"),
                          (RENDITION, "doc-1/artifact/thumb")):  # fmt: skip
            full = f"{PREFIX}/job/{url}"
            await seen.call(path, "get", client, full)  # 200
            await seen.call(path, "get", client, full.replace("doc-1", "nope"))  # 404
            await seen.call(path, "get", client, full, headers={"Authorization": ""})  # 401
            await seen.call(path, "get", client, full, headers=writer)  # 403
        await seen.call(COUNTS, "get", client, COUNTS)
        await seen.call(COUNTS, "get", client, COUNTS, headers={"Authorization": ""})
        await seen.call(COUNTS, "get", client, COUNTS, headers=writer)
        await seen.call(c.API_HEALTH_PATH, "get", client, c.API_HEALTH_PATH)
        await seen.call(c.METRICS_PATH, "get", client, c.METRICS_PATH)
        served = await client.get(openapi.OPENAPI_PATH, headers={"Authorization": ""})  # open
        seen.check(openapi.OPENAPI_PATH, "get", served)
        assert served.json() == DOC
        result = (await q.get("doc-1")).returnvalue  # type: ignore[union-attr]
        assert not list(_schema_validator("#/components/schemas/JobResult").iter_errors(result)), result
        assert result == {"outcome": "completed", "renditions": 2}

    small = settings.model_copy(update={"queue_max": 1, "api_max_body_bytes": 64})
    async with api(small) as client:
        await seen.call(JOB_PATH, "post", client, JOB_PATH, json=JOB)  # 413: over 64 bytes
        tiny = {"source": {"path": "a.jpg"}, "outputs": [{"name": "t", "format": "png", "width": 1,
                                                          "height": 1}]}  # fmt: skip
        async with api(small.model_copy(update={"api_max_body_bytes": 4096})) as roomy:
            await seen.call(JOB_PATH, "post", roomy, JOB_PATH, json=tiny)  # 201: one unfinished job
            await seen.call(JOB_PATH, "post", roomy, JOB_PATH, json=tiny)  # 429

    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with api(down) as client:
        await seen.call(JOB_PATH, "post", client, JOB_PATH, json=JOB)
        await seen.call(STATUS, "get", client, f"{PREFIX}/job/doc-1/status")
        await seen.call(COUNTS, "get", client, COUNTS)
        await seen.call(c.API_HEALTH_PATH, "get", client, c.API_HEALTH_PATH)

    on_s3 = s3_settings(monkeypatch, worker_env, minio, minio.new_bucket(), PREVIEW_S3_URL_TTL_SECONDS="60")
    thumb = Rendition("thumb", "webp", 2, 2, media.jpeg(2, 2))
    store.from_settings(on_s3).write_set("doc-s3", "image/jpeg", [thumb], {"tenant": "acme"})
    async with api(on_s3) as client:
        await seen.call(MANIFEST, "get", client, f"{PREFIX}/job/doc-s3/artifact")  # 200, with urlExpires
        await seen.call(RENDITION, "get", client, f"{PREFIX}/job/doc-s3/artifact/thumb")  # 307
    unreachable = on_s3.model_copy(update={"s3_endpoint": f"http://127.0.0.1:{free_port()}"})
    async with api(unreachable) as client:
        await seen.call(MANIFEST, "get", client, f"{PREFIX}/job/doc-s3/artifact")  # 503
        await seen.call(RENDITION, "get", client, f"{PREFIX}/job/doc-s3/artifact/thumb")  # 503

    missing = sorted(documented() - seen.seen)
    assert not missing, f"documented but never produced: {missing}"


def test_the_checker_refuses_an_answer_the_description_lacks() -> None:
    wrong = httpx.Response(
        200, json={"jobId": "x", "created": True}, request=httpx.Request("POST", "http://a")
    )
    with pytest.raises(AssertionError, match="False was expected"):
        Checker().check(JOB_PATH, "post", wrong)
    teapot = httpx.Response(418, json={"error": "x"}, request=httpx.Request("GET", "http://a"))
    with pytest.raises(AssertionError, match="not documented"):
        Checker().check(STATUS, "get", teapot)
    extra = httpx.Response(404, json={"error": "x", "more": 1}, request=httpx.Request("GET", "http://a"))
    with pytest.raises(AssertionError, match="Additional properties"):
        Checker().check(STATUS, "get", extra)


def test_the_description_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    validate(DOC)  # raises on an invalid document
    broken = {**DOC, "paths": {**DOC["paths"], "/x": {"get": {"responses": {"200": {}}}}}}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)
