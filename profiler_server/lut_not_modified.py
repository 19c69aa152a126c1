"""ASGI fast path for the most frequent request of all: a conditional GET of an unchanged LUT, answered 304.

Through the route (routes/lut.py), a 304 spent most of its time in FastAPI's routing, dependency resolution and
parameter validation. This middleware answers the request itself only when everything the answer depends on is
known in memory and current - the bearer token (the admin token, or a device token verified recently), the
device's LUT version (services/lut_versions.py) and well-formed query parameters - and the ETag matches. Anything
else (no or malformed token, an enroll or unknown token, an unknown device, a query the route would reject, a
changed LUT) goes on to the route, which answers 401/403/404/422/200 exactly as before: this path only ever
answers 304, and only when the route would.

It sits inside the rate limit and the metrics middleware, so a 304 is rate-limited and counted (under the route's
template) like any other request; `profiler_lut_304_fast_path_total` counts the ones answered here.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from profiler_server.deps import READER_ROLES, bearer_token, known_principal
from profiler_server.errors import BadRequest, Unauthorized
from profiler_server.routes.lut import get_lut, not_modified, parse_keys, router, wants_csv
from profiler_server.security import token_sha256
from profiler_server.services import lut

# The route this path stands in for; the metrics middleware labels requests by its template.
_ROUTE = next(r for r in router.routes if getattr(r, "endpoint", None) is get_lut)
# What its `/lut/{device}` path matches (Starlette: one non-empty path segment).
_PATH = re.compile(r"/lut/([^/]+)")
_HEADERS = (b"if-none-match", b"authorization", b"accept")


class LutNotModifiedMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            tag = _unchanged_tag(scope)
            if tag is not None:
                scope["route"] = _ROUTE
                scope["app"].state.metrics.count("lut_304_fast_path")
                await not_modified(tag)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _unchanged_tag(scope: Scope) -> str | None:
    """The ETag to answer 304 with, or None when the route must answer."""
    match = _PATH.fullmatch(scope["path"])
    if match is None:
        return None
    headers = _first_headers(scope)
    if_none_match = headers.get(b"if-none-match")
    if not if_none_match:
        return None
    state = scope["app"].state
    try:
        token = bearer_token(headers.get(b"authorization"))
    except Unauthorized:
        return None
    principal = known_principal(state.settings, state.verified_tokens, token, token_sha256(token))
    if principal is None or principal.role not in READER_ROLES:
        return None
    query = _lut_query(scope["query_string"])
    if query is None:
        return None
    keys, format = query
    try:
        key_filter = parse_keys(keys)
    except BadRequest:
        return None
    version = state.lut_versions.local(match.group(1))
    if version is None:
        return None
    tag = lut.etag(version, key_filter, "csv" if wants_csv(format, headers.get(b"accept", "")) else "json")
    return tag if lut.matches(if_none_match, tag) else None


def _first_headers(scope: Scope) -> dict[bytes, str]:
    # The first occurrence of each, as Starlette's `request.headers.get` reads them.
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in _HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _lut_query(query_string: bytes) -> tuple[str | None, str | None] | None:
    """(keys, format) parsed as Starlette parses them; None for anything but at most one of each with a valid
    format (the route decides what a repeated parameter means, and answers 422 to a bad format)."""
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        values.setdefault(name, []).append(value)
    keys, format = values.get("keys", []), values.get("format", [])
    if len(keys) > 1 or len(format) > 1 or (format and format[0] not in ("json", "csv")):
        return None
    return (keys[0] if keys else None), (format[0] if format else None)
