"""The service's typed errors and their one translation into HTTP responses.

Services raise `ApiError` subclasses naming the offending field; validation errors from FastAPI keep status 422
but get the same body shape: `{"detail": "<field>: <message>", "field": "<field>", "errors": [...]}`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from profiler_server.blobs import BlobStoreUnavailable

log = logging.getLogger("profiler_server")
# Seconds a client should wait before retrying while the database is unavailable.
DATABASE_RETRY_AFTER_S = 5
# ... and while the server is busy (its queue for database work is full): load passes quickly.
BUSY_RETRY_AFTER_S = 1
# ... and while the store of op models (an S3-compatible bucket) does not answer.
BLOB_STORE_RETRY_AFTER_S = 5
# SQLSTATEs that mean "the database cannot serve this now", not "this request is wrong": connection (08),
# insufficient resources such as a full disk (53), operator intervention such as a shutdown (57), deadlock or
# serialisation failure (40), read-only transaction as on a standby (25006).
UNAVAILABLE_SQLSTATES = ("08", "53", "57", "40", "25006")


class ApiError(Exception):
    status_code = 400

    def __init__(self, detail: str, field: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.headers = headers


class BadRequest(ApiError):
    status_code = 422


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="Authorization", headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class Gone(ApiError):
    status_code = 410


class PayloadTooLarge(ApiError):
    status_code = 413


class TooManyRequests(ApiError):
    status_code = 429

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, field="Authorization", headers={"Retry-After": str(retry_after_s)})


class ServerBusy(ApiError):
    """No turn for database work in time: nothing was applied; retry after `Retry-After`."""

    status_code = 503

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": str(BUSY_RETRY_AFTER_S)})


def field_path(loc: Sequence[str | int]) -> str:
    """('body', 'results', 0, 'samples_us') -> 'results[0].samples_us'."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def error_body(detail: str, field: str | None, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": detail, "field": field}
    if errors is not None:
        body["errors"] = errors
    return body


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_body(exc.detail, exc.field), status_code=exc.status_code, headers=exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": field_path(e["loc"]), "message": e["msg"]} for e in exc.errors()]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return JSONResponse(
        error_body(f"{first['field']}: {first['message']}", first["field"], errors), status_code=422
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # FastAPI's own 400 is a body it could not parse (e.g. a number past Python's 4,300-digit limit).
    field = "body" if exc.status_code == 400 else None
    return JSONResponse(error_body(str(exc.detail), field), status_code=exc.status_code, headers=exc.headers)


def _first_line(exc: BaseException) -> str:
    message = str(exc).strip()
    return message.splitlines()[0][:200] if message else type(exc).__name__


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StatementError)
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    reason = _first_line(exc.orig or exc)
    # A value the database cannot hold (an integer past 64 bits, a NUL character in PostgreSQL text): the
    # input's fault, refused like any other bad input; the driver's message says which value.
    unstorable = isinstance(exc, DataError) or sqlstate.startswith("22")
    if unstorable or (not isinstance(exc, DBAPIError) and isinstance(exc.orig, TypeError | OverflowError)):
        log.warning("unstorable value refused: %s", reason)
        return JSONResponse(error_body(f"body: a value cannot be stored: {reason}", "body"), status_code=422)
    # Connection lost or refused, database locked past the busy timeout, disk full, read-only: the request was
    # not applied (its transaction rolled back), so 503 + Retry-After tells agents to keep it and retry.
    if isinstance(exc, OperationalError) or sqlstate.startswith(UNAVAILABLE_SQLSTATES):
        log.warning("database unavailable: %s", reason)
        return JSONResponse(
            error_body(f"database unavailable, retry later: {reason}", None),
            status_code=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    raise exc  # anything else is a bug: a 500 with its traceback in the log


async def _pool_timeout(_request: Request, exc: Exception) -> JSONResponse:
    # Every connection of the pool is in use past its timeout: nothing was applied.
    log.warning("database pool exhausted: %s", _first_line(exc))
    return JSONResponse(
        error_body("server busy, retry later: no database connection free", None),
        status_code=503,
        headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
    )


async def _blob_store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    # The store of op models cannot serve (unreachable, its bucket missing, access denied): nothing was
    # committed (an upload stores its models before its transaction), so the client may retry as for a database.
    log.warning("blob store unavailable: %s", exc)
    return JSONResponse(
        error_body(f"model storage unavailable, retry later: {exc}", None),
        status_code=503,
        headers={"Retry-After": str(BLOB_STORE_RETRY_AFTER_S)},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StatementError, _database_error)
    app.add_exception_handler(PoolTimeout, _pool_timeout)
    app.add_exception_handler(BlobStoreUnavailable, _blob_store_unavailable)
