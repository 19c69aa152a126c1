"""Search spaces (admin writes, readers read) and a device's LUT coverage per space."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from sqlalchemy.orm import Session

from profiler_server.clock import utcnow
from profiler_server.deps import AdminPrincipal, DatabaseDep, ReaderPrincipal
from profiler_server.json_body import json_body, openapi_json_body
from profiler_server.openapi import AUTHENTICATED, WITH_BODY, errors
from profiler_server.schemas_validation import (
    DeviceCoverage,
    SpaceName,
    SpacePublic,
    SpacePut,
    SpacesPublic,
)
from profiler_server.services import devices, spaces

router = APIRouter(tags=["spaces"])


@router.put("/spaces/{name}", response_model=SpacePublic, responses=errors(*WITH_BODY, 409), openapi_extra=openapi_json_body(SpacePut))
async def put_space(
    name: Annotated[SpaceName, Path()],
    _: AdminPrincipal,
    body: Annotated[SpacePut, Depends(json_body(SpacePut))],
    response: Response,
    database: DatabaseDep,
) -> SpacePublic:
    now = utcnow()
    space, created = await database.write(lambda session: spaces.put_space(session, name, body, now))
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return spaces.space_public(space, len(spaces.space_keys(body)))


def _list_spaces(session: Session) -> SpacesPublic:
    counts = spaces.key_counts(session)
    data = [spaces.space_public(s, counts.get(s.id, 0)) for s in spaces.list_spaces(session)]
    return SpacesPublic(data=data, count=len(data))


@router.get("/spaces", response_model=SpacesPublic, responses=errors(*AUTHENTICATED))
async def list_spaces(_: ReaderPrincipal, database: DatabaseDep) -> SpacesPublic:
    return await database.read(_list_spaces)


def _get_space(session: Session, name: str) -> SpacePublic:
    space = spaces.space_by_name(session, name)
    return spaces.space_public(space, spaces.key_counts(session).get(space.id, 0))


@router.get("/spaces/{name}", response_model=SpacePublic, responses=errors(*AUTHENTICATED, 404))
async def get_space(name: str, _: ReaderPrincipal, database: DatabaseDep) -> SpacePublic:
    return await database.read(lambda session: _get_space(session, name))


def _coverage(session: Session, name: str, space: str | None) -> DeviceCoverage:
    device = devices.device_by_name(session, name)
    space_ids = [spaces.space_by_name(session, space, field="space").id] if space is not None else None
    by_pair = spaces.coverage(session, utcnow(), device_ids=[device.id], space_ids=space_ids)
    data = sorted(by_pair.values(), key=lambda c: c.space)
    return DeviceCoverage(device=device.name, data=data, count=len(data))


@router.get("/devices/{name}/coverage", response_model=DeviceCoverage, responses=errors(*AUTHENTICATED, 404, 422))
async def device_coverage(
    name: str,
    _: ReaderPrincipal,
    database: DatabaseDep,
    space: Annotated[str | None, Query(description="only this search space")] = None,
) -> DeviceCoverage:
    return await database.read(lambda session: _coverage(session, name, space))
