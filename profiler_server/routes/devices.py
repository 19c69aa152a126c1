"""Devices: registration (enroll token), listing and coverage."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from profiler_server.clock import utcnow
from profiler_server.deps import DatabaseDep, EnrollPrincipal, ReaderPrincipal
from profiler_server.json_body import json_body, openapi_json_body
from profiler_server.openapi import AUTHENTICATED, WITH_BODY, errors
from profiler_server.schemas import DevicePublic, DeviceRegister, DeviceRegistered, DevicesPublic
from profiler_server.services import devices

router = APIRouter(prefix="/devices", tags=["devices"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=DeviceRegistered,
    responses=errors(*WITH_BODY, 409),
    openapi_extra=openapi_json_body(DeviceRegister),
)
async def register(
    _: EnrollPrincipal,
    body: Annotated[DeviceRegister, Depends(json_body(DeviceRegister))],
    database: DatabaseDep,
) -> DeviceRegistered:
    now = utcnow()
    model_format = devices.device_format(body.runtime, body.format)
    token = await database.write(
        lambda session: devices.register_device(
            session, body.name, body.platform, body.attributes, now, body.runtime, model_format
        )
    )
    return DeviceRegistered(name=body.name, token=token)


@router.get("", response_model=DevicesPublic, responses=errors(*AUTHENTICATED))
async def list_devices(_: ReaderPrincipal, database: DatabaseDep) -> DevicesPublic:
    now = utcnow()
    data = await database.read(lambda session: devices.list_devices(session, now))
    return DevicesPublic(data=data, count=len(data))


@router.get("/{name}", response_model=DevicePublic, responses=errors(*AUTHENTICATED, 404))
async def get_device(name: str, _: ReaderPrincipal, database: DatabaseDep) -> DevicePublic:
    now = utcnow()
    return await database.read(
        lambda session: devices.device_public(session, devices.device_by_name(session, name), now)
    )
