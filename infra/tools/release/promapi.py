"""A minimal Prometheus HTTP API client: instant queries that answer one number."""

from __future__ import annotations

import math
from typing import Any

import httpx

from infra.errors import PrometheusError


class Prometheus:
    """Instant queries against ``<url>/api/v1/query``."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise PrometheusError(f"--prometheus: must be an http(s) URL, got {url!r}")
        self.url = url.rstrip("/")
        self._client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def query(self, promql: str) -> float | None:
        """The query's single value; None when it returns no series or NaN (e.g. 0/0).

        A query must aggregate to one series (``sum(…)``, ``max(…)``): several
        series would make a threshold ambiguous, so they are an error.
        """
        try:
            response = self._client.get(f"{self.url}/api/v1/query", params={"query": promql})
        except httpx.HTTPError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {exc}") from None
        body = _json(response)
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"query {promql!r} failed: {body.get('error') or response.status_code}")
        data = body["data"]
        kind, result = data["resultType"], data["result"]
        if kind == "scalar":
            return _number(result[1])
        if kind != "vector":
            raise PrometheusError(f"query {promql!r} returned a {kind}, expected one number")
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"query {promql!r} returned {len(result)} series; aggregate it to one")
        return _number(result[0]["value"][1])


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise PrometheusError(f"Prometheus answered {response.status_code} with non-JSON") from None
    return body if isinstance(body, dict) else {}


def _number(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) else value
