"""Search spaces (admin writes, readers read) and a device's LUT coverage per space."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from profiler_server.clock import utcnow
from profiler_server.deps import AdminPrincipal, ReaderPrincipal, ReadSession, WriteSession
from profiler_server.schemas_validation import (
    DeviceCoverage,
    SpaceName,
    SpacePublic,
    SpacePut,
    SpacesPublic,
)
from profiler_server.services import devices, spaces

router = APIRouter(tags=["spaces"])


@router.put("/spaces/{name}", response_model=SpacePublic)
def put_space(
    name: Annotated[SpaceName, Path()],
    body: SpacePut,
    response: Response,
    _: AdminPrincipal,
    session: WriteSession,
) -> SpacePublic:
    space, created = spaces.put_space(session, name, body, utcnow())
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return spaces.space_public(space, len(spaces.space_keys(body)))


@router.get("/spaces", response_model=SpacesPublic)
def list_spaces(_: ReaderPrincipal, session: ReadSession) -> SpacesPublic:
    counts = spaces.key_counts(session)
    data = [spaces.space_public(s, counts.get(s.id, 0)) for s in spaces.list_spaces(session)]
    return SpacesPublic(data=data, count=len(data))


@router.get("/spaces/{name}", response_model=SpacePublic)
def get_space(name: str, _: ReaderPrincipal, session: ReadSession) -> SpacePublic:
    space = spaces.space_by_name(session, name)
    return spaces.space_public(space, spaces.key_counts(session).get(space.id, 0))


@router.get("/devices/{name}/coverage", response_model=DeviceCoverage)
def device_coverage(
    name: str,
    _: ReaderPrincipal,
    session: ReadSession,
    space: Annotated[str | None, Query(description="only this search space")] = None,
) -> DeviceCoverage:
    device = devices.device_by_name(session, name)
    space_ids = [spaces.space_by_name(session, space, field="space").id] if space is not None else None
    by_pair = spaces.coverage(session, utcnow(), device_ids=[device.id], space_ids=space_ids)
    data = sorted(by_pair.values(), key=lambda c: c.space)
    return DeviceCoverage(device=device.name, data=data, count=len(data))
