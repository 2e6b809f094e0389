"""Bodies that are not strict JSON get 400 with a reason, reach no Redis and count no 5xx.

Each of these answered 500 before (issue 16, item 4), and the lone surrogate even made a job
whose artifact route then failed for ever.
"""

from __future__ import annotations

import base64

import pytest
import worker_media as media
from api_kit import JSON_TYPE, api
from prometheus_client.parser import text_string_to_metric_families

from worker import constants as c
from worker.settings import Settings

INLINE = base64.b64encode(media.jpeg(40, 30)).decode()
PREFIX = b'{"source": {"inline": "' + INLINE.encode() + b'"}, "outputs": [{"name": "t", "format": "webp", '
GOOD_OUTPUT = b'"width": 8, "height": 8}]'
JOB_OUTPUTS = {"outputs": [{"name": "t", "format": "webp", "width": 8, "height": 8}]}

DEEP = b"[" * 10_000 + b"]" * 10_000
BAD = {
    "nested 10,000 deep": PREFIX + GOOD_OUTPUT + b', "metadata": {"a": ' + DEEP + b"}}",
    "a 5,000-digit integer": PREFIX + b'"width": ' + b"9" * 5000 + b', "height": 8}]}',
    "NaN": PREFIX + b'"width": NaN, "height": 8}]}',
    "Infinity": PREFIX + b'"width": Infinity, "height": 8}]}',
    "a lone surrogate": PREFIX + GOOD_OUTPUT + b', "metadata": {"note": "\\ud800"}}',
    "invalid UTF-8": PREFIX + GOOD_OUTPUT + b', "metadata": {"note": "\xff"}}',
    "not JSON": b"{not json",
    "-1e400": PREFIX + b'"width": -1e400, "height": 8}]}',
    "1e999999999": PREFIX + GOOD_OUTPUT + b', "metadata": {"n": 1e999999999}}',
    "UTF-16": (PREFIX + GOOD_OUTPUT + b"}").decode().encode("utf-16"),
    "UTF-16-LE, no byte-order mark": (PREFIX + GOOD_OUTPUT + b"}").decode().encode("utf-16-le"),
    "UTF-32": (PREFIX + GOOD_OUTPUT + b"}").decode().encode("utf-32"),
    "a UTF-8 byte-order mark": b"\xef\xbb\xbf" + PREFIX + GOOD_OUTPUT + b"}",
}
REASONS = {
    "nested 10,000 deep": "is nested too deeply",
    "a 5,000-digit integer": "is not valid JSON: Exceeds the limit",
    "NaN": "is not valid JSON: NaN is not a JSON number",
    "Infinity": "is not valid JSON: Infinity is not a JSON number",
    "a lone surrogate": "is not valid UTF-8 text: surrogates not allowed",
    "invalid UTF-8": "is not valid UTF-8 text: invalid start byte",
    "not JSON": "is not valid JSON: Expecting property name",
    "-1e400": "is not valid JSON: number -1e400 is out of range",
    "1e999999999": "is not valid JSON: number 1e999999999 is out of range",
    "UTF-16": "is not valid UTF-8 text: invalid start byte",
    "UTF-16-LE, no byte-order mark": "is not valid JSON: Expecting property name",
    "UTF-32": "is not valid UTF-8 text: invalid start byte",
    "a UTF-8 byte-order mark": "is not valid JSON: starts with a byte-order mark",
}


def server_errors(metrics_text: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        if family.name == c.METRIC_API_REQUESTS.removesuffix("_total"):
            totals = [s for s in family.samples if s.name.endswith("_total")]
            return sum(s.value for s in totals if s.labels["status"].startswith("5"))
    return 0.0


async def test_the_good_body_the_bad_ones_are_made_from_is_accepted(settings: Settings) -> None:
    async with api(settings) as client:
        resp = await client.post("/api/preview/job", content=PREFIX + GOOD_OUTPUT + b"}", headers=JSON_TYPE)
        assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("case", list(BAD))
async def test_a_body_that_is_not_strict_json_is_400_and_reaches_no_redis(
    case: str, settings: Settings
) -> None:
    async with api(settings) as client:
        headers = {"content-type": "application/json"}
        resp = await client.post("/api/preview/job", content=BAD[case], headers=headers)
        assert resp.status_code == 400, resp.text
        body = resp.json()
        # Nesting deeper than a job can is refused while the body streams in, before any parsing.
        assert body["error"] == ("invalid job" if case == "nested 10,000 deep" else "body is not valid JSON")
        assert [v["path"] for v in body["violations"]] == ["$"]
        assert body["violations"][0]["message"].startswith(REASONS[case]), body
        queue = (await client.get("/api/preview/queue/metrics")).json()
        assert queue["waiting"] == 0
        assert server_errors((await client.get("/metrics")).text) == 0


CONTROL_URLS = ["https://h.example/a\tb", "https://h.example\t/a", "https://h.example/a\r\nX: y",
                "https://h.example/a\n", "https://h.example/\x7f"]  # fmt: skip


@pytest.mark.parametrize("url", CONTROL_URLS, ids=repr)
async def test_a_url_with_a_control_character_is_400(url: str, settings: Settings) -> None:
    async with api(settings) as client:
        resp = await client.post("/api/preview/job", json={**JOB_OUTPUTS, "source": {"url": url}})
        assert resp.status_code == 400, resp.text
        assert [v["path"] for v in resp.json()["violations"]] == ["$.source.url"]
