"""Reading manifests and small blobs from an OCI registry, treating it as hostile.

Plain HTTP only for a loopback registry (:func:`is_loopback`, what the image tools allow too),
HTTPS anywhere else, for the registry, its token service and every redirect. Every read is
bounded (:data:`MAX_MANIFEST_BYTES`, :data:`MAX_BLOB_BYTES`) and times out, and every blob is
checked against the digest it was asked for. Anonymous pulls use the registry's bearer-token
flow; credentials come from the containers auth file (``REGISTRY_AUTH_FILE``) when it holds the
registry, as ``python -m infra ci registry-login`` writes it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.errors import SignatureError
from infra.loopback import is_loopback_host

#: The OCI distribution spec's limit for a manifest a registry must accept (4 MiB).
MAX_MANIFEST_BYTES = 4 * 2**20
#: A signature payload or attestation envelope: a few kilobytes; anything larger is refused.
MAX_BLOB_BYTES = 2**20
TIMEOUT = 30.0
MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))  # fmt: skip
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def is_loopback(registry: str) -> bool:
    """Whether ``registry`` (``host[:port]``) is a loopback address, where plain HTTP is acceptable."""
    if registry.startswith("["):  # [v6]:port
        host = registry[1 : registry.find("]")]
    elif registry.count(":") == 1:  # name:port or v4:port
        host = registry.rsplit(":", 1)[0]
    else:  # a bare name, v4 or v6 address
        host = registry
    return is_loopback_host(host)


def _allowed(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.netloc))


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to HTTPS, or to plain HTTP on loopback."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if not _allowed(newurl):
            raise SignatureError(f"the registry redirected to {newurl[:120]!r}: only HTTPS leaves loopback")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_Redirects())


def _basic_auth(registry: str) -> str | None:
    """``user:password`` for ``registry`` from ``$REGISTRY_AUTH_FILE`` (base64, as podman writes it)."""
    path = os.environ.get("REGISTRY_AUTH_FILE")
    if not path:
        return None
    try:
        auths = json.loads(Path(path).read_text()).get("auths", {})
        encoded = auths.get(registry, {}).get("auth")
        return base64.b64decode(encoded).decode() if isinstance(encoded, str) else None
    except (OSError, ValueError, AttributeError):
        return None


@dataclass
class Registry:
    """One registry host (``host[:port]``), read with a bearer token once it asks for one."""

    host: str
    token: str | None = field(default=None, repr=False)

    @property
    def base(self) -> str:
        return f"{'http' if is_loopback(self.host) else 'https'}://{self.host}"

    def _open(self, url: str, accept: str | None, limit: int) -> tuple[int, bytes, Any]:
        headers = {"Accept": accept} if accept else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, headers=headers)
        try:
            with _OPENER.open(request, timeout=TIMEOUT) as resp:
                body = resp.read(limit + 1)
                status, found = resp.status, resp.headers
        except urllib.error.HTTPError as exc:
            return exc.code, b"", exc.headers
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SignatureError(f"cannot read {url}: {reason}") from None
        if len(body) > limit:
            raise SignatureError(f"{url} answered more than {limit} bytes; refused")
        return status, body, found

    def _authenticate(self, challenge: str, scope_repo: str) -> None:
        """The bearer-token flow: ask the realm the 401 named for a pull token of the repository."""
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() != "bearer":
            raise SignatureError(f"{self.host} asks for {scheme or 'unknown'} authentication; not supported")
        fields = dict(_CHALLENGE.findall(params))
        realm = fields.get("realm", "")
        if not _allowed(realm):
            raise SignatureError(f"{self.host}'s token service {realm[:120]!r} is not HTTPS; refused")
        query = {"service": fields.get("service", ""), "scope": f"repository:{scope_repo}:pull"}
        request = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(query)}")
        creds = _basic_auth(self.host)
        if creds:
            request.add_header("Authorization", "Basic " + base64.b64encode(creds.encode()).decode())
        try:
            with _OPENER.open(request, timeout=TIMEOUT) as resp:
                doc = json.loads(resp.read(65536))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SignatureError(f"cannot get a pull token from {self.host}: {exc}") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str):
            raise SignatureError(f"{self.host}'s token service answered no token")
        self.token = token

    def get(self, repository: str, path: str, accept: str | None, limit: int) -> bytes | None:
        """``GET /v2/<repository>/<path>``: the body, or None for 404 (no such manifest or blob)."""
        url = f"{self.base}/v2/{repository}/{path}"
        status, body, headers = self._open(url, accept, limit)
        if status == 401 and self.token is None:
            self._authenticate(headers.get("WWW-Authenticate", "") if headers else "", repository)
            status, body, headers = self._open(url, accept, limit)
        if status == 404:
            return None
        if status != 200:
            raise SignatureError(f"{url} answered HTTP {status}")
        return body

    def manifest(self, repository: str, reference: str) -> bytes | None:
        """The manifest at a tag or digest (bounded); None when there is none."""
        return self.get(repository, f"manifests/{reference}", MANIFEST_TYPES, MAX_MANIFEST_BYTES)

    def blob(self, repository: str, digest: str) -> bytes:
        """A small blob, checked against its digest."""
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise SignatureError(f"blob digest {digest[:80]!r} is not sha256:<64 hex>")
        body = self.get(repository, f"blobs/{digest}", None, MAX_BLOB_BYTES)
        if body is None:
            raise SignatureError(f"{self.host}/{repository} has no blob {digest}")
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise SignatureError(f"{self.host}/{repository} served blob {digest} with other content")
        return body
