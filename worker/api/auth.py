"""Bearer tokens of the job API: ``Authorization: Bearer <token>`` on every route but health and metrics.

``PREVIEW_API_TOKENS`` holds one or more comma-separated tokens, so an old and a new one are
both valid while clients rotate. A token may be scoped: ``read:<token>`` may only read
(status, artifacts, queue counts), ``enqueue:<token>`` may only enqueue; a plain token may do
both. Tokens are compared in constant time, each against every configured one. With no token
configured the API refuses to start, unless ``PREVIEW_API_AUTH=off`` turns authentication off
for local use (and it says so in its log). Handlers declare the scope they need with
:func:`worker.api.handlers.requires`, which asks :meth:`Policy.refusal`: the one place a
request's token is checked.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

SCOPE_READ = "read"
SCOPE_ENQUEUE = "enqueue"
SCOPES = frozenset({SCOPE_READ, SCOPE_ENQUEUE})
#: What a token may be made of (RFC 6750's token68, minus nothing): at least 16 characters.
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{16,512}")


@dataclass(frozen=True)
class Token:
    """One accepted token and what it may do."""

    value: bytes
    scopes: frozenset[str]


def parse_tokens(text: str) -> list[Token]:
    """``PREVIEW_API_TOKENS`` as tokens; ValueError says which entry is wrong, never its value."""
    tokens: list[Token] = []
    for number, raw in enumerate((part.strip() for part in text.split(",")), start=1):
        if not raw:
            continue
        scope, sep, value = raw.partition(":")
        scopes = frozenset({scope}) if sep else SCOPES
        value = value if sep else raw
        if sep and scope not in SCOPES:
            raise ValueError(f"entry {number}: scope must be read or enqueue (read:TOKEN, enqueue:TOKEN)")
        if not _TOKEN.fullmatch(value):
            raise ValueError(f"entry {number}: a token is 16-512 of A-Z a-z 0-9 . _ ~ + / = -")
        tokens.append(Token(value.encode(), scopes))
    if len({t.value for t in tokens}) != len(tokens):
        raise ValueError("a token is listed twice")
    return tokens


def bearer(header: str | None) -> bytes | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    if not header:
        return None
    kind, _, value = header.strip().partition(" ")
    return value.strip().encode() if kind.lower() == "bearer" and value.strip() else None


def scopes_of(presented: bytes | None, tokens: list[Token]) -> frozenset[str]:
    """The scopes ``presented`` grants (empty when it matches no token); constant time per token."""
    granted: frozenset[str] = frozenset()
    for token in tokens:  # no early exit: the time taken does not say which token matched
        if hmac.compare_digest(presented or b"", token.value):
            granted = token.scopes
    return granted


@dataclass(frozen=True)
class Policy:
    """The API's authentication: on or off (``PREVIEW_API_AUTH``) and the accepted tokens."""

    enabled: bool
    tokens: list[Token]

    def refusal(self, authorization: str | None, scope: str) -> tuple[int, str] | None:
        """Why a request with this ``Authorization`` header may not use ``scope``, as (HTTP status,
        message): 401 without a valid token, 403 with one that lacks the scope; None when allowed."""
        if not self.enabled:
            return None
        granted = scopes_of(bearer(authorization), self.tokens)
        if not granted:
            return 401, "missing or invalid bearer token"
        if scope not in granted:
            return 403, f"this token may not {scope}"
        return None
