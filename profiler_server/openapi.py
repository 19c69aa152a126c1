"""What the OpenAPI schema says beyond the routes: the bearer-token scheme and the error answers.

Routes declare the 4xx (and 503) answers they give with `errors(...)`; each is documented with the one error body
(`ErrorMessage`). A route that declares 401 takes a bearer token, and the schema says so (`security`), which
gives Swagger UI at /docs its Authorize button.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from profiler_server.schemas import ErrorMessage

BEARER_SCHEME = "bearerAuth"

_DESCRIPTIONS = {
    401: "No token, or a token the server does not know (header WWW-Authenticate: Bearer).",
    403: "The token's role may not use this route (an admin, enroll or device token is needed).",
    404: "The device, op, search space, measurement or task named does not exist.",
    409: "Conflicts with what the server holds (a name taken, a key or sha256 that differs).",
    410: "The op's model file was removed (profiler-server gc): upload the op again.",
    413: "The body exceeds the server's limit (PROFILER_MAX_BODY_BYTES).",
    422: "Invalid input; `field` names it, `errors` lists every field at fault.",
    429: "Rate limit: retry after the Retry-After header's seconds.",
    503: "The database or the model store is unavailable, or the server busy: nothing was applied; retry after "
    "Retry-After.",
}

# Every route that needs a token: a missing or unknown one, the wrong role, the rate limit, a busy database.
AUTHENTICATED = (401, 403, 429, 503)
# ... and a route that takes a JSON body.
WITH_BODY = (*AUTHENTICATED, 413, 422)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with its description and the error body."""
    return {code: {"model": ErrorMessage, "description": _DESCRIPTIONS[code]} for code in sorted(set(codes))}


def install_openapi(app: FastAPI) -> None:
    """Generate the schema once, adding the bearer scheme and, on each route that answers 401, its `security`."""

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = document.setdefault("components", {})
            components.setdefault("securitySchemes", {})[BEARER_SCHEME] = {
                "type": "http",
                "scheme": "bearer",
                "description": "An admin, enroll or device token (docs/protocol.md says which route takes which).",
            }
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    if "401" in operation.get("responses", {}):
                        operation["security"] = [{BEARER_SCHEME: []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema
