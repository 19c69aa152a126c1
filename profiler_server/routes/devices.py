"""Devices: registration (enroll token), listing and coverage."""

from __future__ import annotations

from fastapi import APIRouter, status

from profiler_server.clock import utcnow
from profiler_server.deps import EnrollPrincipal, ReaderPrincipal, ReadSession, WriteSession
from profiler_server.schemas import DevicePublic, DeviceRegister, DeviceRegistered, DevicesPublic
from profiler_server.services import devices

router = APIRouter(prefix="/devices", tags=["devices"])


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=DeviceRegistered)
def register(body: DeviceRegister, _: EnrollPrincipal, session: WriteSession) -> DeviceRegistered:
    token = devices.register_device(session, body.name, body.platform, body.attributes, utcnow())
    return DeviceRegistered(name=body.name, token=token)


@router.get("", response_model=DevicesPublic)
def list_devices(_: ReaderPrincipal, session: ReadSession) -> DevicesPublic:
    data = devices.list_devices(session, utcnow())
    return DevicesPublic(data=data, count=len(data))


@router.get("/{name}", response_model=DevicePublic)
def get_device(name: str, _: ReaderPrincipal, session: ReadSession) -> DevicePublic:
    return devices.device_public(session, devices.device_by_name(session, name), utcnow())
