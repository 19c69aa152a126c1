"""The LUT of a device: JSON or CSV, filtered by keys, with a strong ETag and 304."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from db.session import autocommit_connection
from profiler_server.deps import ReaderPrincipal
from profiler_server.errors import BadRequest
from profiler_server.schemas import KEY_PATTERN
from profiler_server.services import lut

router = APIRouter(prefix="/lut", tags=["lut"])


def _parse_keys(keys: str | None) -> list[str] | None:
    if keys is None:
        return None
    parsed = [k for k in (part.strip() for part in keys.split(",")) if k]
    for i, key in enumerate(parsed):
        if not KEY_PATTERN.fullmatch(key):
            raise BadRequest(
                f"key {key!r} is not a valid op key ([A-Za-z0-9._-], 1-200 characters)", f"keys[{i}]"
            )
    return list(dict.fromkeys(parsed))


@dataclass(frozen=True, slots=True)
class _Rendered:
    status_code: int
    body: bytes
    etag: str


def _render(
    request: Request, device: str, keys: list[str] | None, as_csv: bool, if_none_match: str | None
) -> _Rendered:
    media = "csv" if as_csv else "json"
    # Autocommit: the version read is one statement. A cache miss reads the entries in a second one; if a
    # commit lands in between, the entries are newer than the version they are cached under, never older.
    with autocommit_connection(request.app.state.engine) as conn:
        version = lut.lut_version(conn, device)
        tag = lut.etag(version, keys, media)
        if lut.matches(if_none_match, tag):
            return _Rendered(304, b"", tag)
        rendered = request.app.state.lut_cache.get(conn, version)
    return _Rendered(200, rendered.csv_bytes(keys) if as_csv else rendered.json_bytes(keys), tag)


@router.get("/{device}")
async def get_lut(
    device: str,
    request: Request,
    _: ReaderPrincipal,
    keys: Annotated[str | None, Query(description="comma-separated op keys")] = None,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
) -> Response:
    """Headers read: `If-None-Match` (304 when it matches the ETag), `Accept: text/csv` (CSV unless ?format=)."""
    # Async, headers read directly, the database work in one worker-thread hop: the 304 path stays cheap.
    key_filter = _parse_keys(keys)
    accept = request.headers.get("accept", "")
    as_csv = format == "csv" or (format is None and "text/csv" in accept)
    if_none_match = request.headers.get("if-none-match")
    result = await run_in_threadpool(_render, request, device, key_filter, as_csv, if_none_match)
    headers = {"ETag": result.etag, "Cache-Control": "no-cache", "Vary": "Accept"}
    if result.status_code == 304:
        return Response(status_code=304, headers=headers)
    media = "text/csv; charset=utf-8" if as_csv else "application/json"
    return Response(result.body, media_type=media, headers=headers)
