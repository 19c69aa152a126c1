"""The LUT of a device: JSON or CSV, filtered by keys, with a strong ETag and 304."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import Connection

from fbnet_core.keys import KEY_PATTERN
from profiler_server.database import Database
from profiler_server.deps import ReaderPrincipal
from profiler_server.errors import BadRequest
from profiler_server.openapi import AUTHENTICATED, errors
from profiler_server.services import lut

router = APIRouter(prefix="/lut", tags=["lut"])


def parse_keys(keys: str | None) -> list[str] | None:
    if keys is None:
        return None
    parsed = [k for k in (part.strip() for part in keys.split(",")) if k]
    for i, key in enumerate(parsed):
        if not KEY_PATTERN.fullmatch(key):
            raise BadRequest(
                f"key {key!r} is not a valid op key ([A-Za-z0-9._-], 1-200 characters)", f"keys[{i}]"
            )
    return list(dict.fromkeys(parsed))


def wants_csv(format: str | None, accept: str) -> bool:
    return format == "csv" or (format is None and "text/csv" in accept)


def representation_headers(tag: str) -> dict[str, str]:
    return {"ETag": tag, "Cache-Control": "no-cache", "Vary": "Accept"}


def not_modified(tag: str) -> Response:
    return Response(status_code=304, headers=representation_headers(tag))


def _body(
    cache: lut.LutCache, conn: Connection, version: lut.LutVersion, keys: list[str] | None, as_csv: bool
) -> bytes:
    # Autocommit: a cache miss reads the entries in a statement after the version's; if a commit lands in
    # between, the entries are newer than the version they are cached under, never older.
    rendered = cache.get(conn, version)
    return rendered.csv_bytes(keys) if as_csv else rendered.json_bytes(keys)


@router.get("/{device}", responses=errors(*AUTHENTICATED, 404, 422))
async def get_lut(
    device: str,
    request: Request,
    _: ReaderPrincipal,
    keys: Annotated[str | None, Query(description="comma-separated op keys")] = None,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
) -> Response:
    """Headers read: `If-None-Match` (304 when it matches the ETag), `Accept: text/csv` (CSV unless ?format=).

    Most 304s never get here: `lut_not_modified.LutNotModifiedMiddleware` answers them first when it can.
    """
    key_filter = parse_keys(keys)
    as_csv = wants_csv(format, request.headers.get("accept", ""))
    version = await request.app.state.lut_versions.current(device)
    tag = lut.etag(version, key_filter, "csv" if as_csv else "json")
    if lut.matches(request.headers.get("if-none-match"), tag):
        return not_modified(tag)
    body = request.app.state.lut_cache.rendered_bytes(version, as_csv) if key_filter is None else None
    if body is None:  # rendering (a database read, or serialising entries) happens off the event loop
        database: Database = request.app.state.database
        cache: lut.LutCache = request.app.state.lut_cache
        body = await database.connection(lambda conn: _body(cache, conn, version, key_filter, as_csv))
    return Response(
        body,
        media_type="text/csv; charset=utf-8" if as_csv else "application/json",
        headers=representation_headers(tag),
    )
