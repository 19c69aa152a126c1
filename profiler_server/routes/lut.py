"""The LUT of a device: JSON or CSV, filtered by keys, with a strong ETag and 304."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response

from profiler_server.deps import ReaderPrincipal, ReadSession
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


@router.get("/{device}")
def get_lut(
    device: str,
    request: Request,
    _: ReaderPrincipal,
    session: ReadSession,
    keys: Annotated[str | None, Query(description="comma-separated op keys")] = None,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,  # noqa: A002 - the query name
    accept: Annotated[str | None, Header()] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    key_filter = _parse_keys(keys)
    as_csv = format == "csv" or (format is None and accept is not None and "text/csv" in accept)
    media = "text/csv; charset=utf-8" if as_csv else "application/json"
    version = lut.lut_version(session, device)
    tag = lut.etag(version, key_filter, media)
    headers = {"ETag": tag, "Cache-Control": "no-cache", "Vary": "Accept"}
    if lut.matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    rendered = request.app.state.lut_cache.get(session, version)
    body = rendered.csv_bytes(key_filter) if as_csv else rendered.json_bytes(key_filter)
    return Response(body, media_type=media, headers=headers)
