"""Validation runs per device: the admin posts points, the server computes and keeps the summary."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from profiler_server.clock import utcnow
from profiler_server.deps import AdminPrincipal, ReaderPrincipal, ReadSession, WriteSession
from profiler_server.schemas_validation import ValidationCreate, ValidationRunPublic, ValidationRunsPublic
from profiler_server.services import devices, validations

router = APIRouter(prefix="/devices", tags=["validations"])


@router.post("/{name}/validations", status_code=status.HTTP_201_CREATED, response_model=ValidationRunPublic)
def post_validation(
    name: str, body: ValidationCreate, _: AdminPrincipal, session: WriteSession
) -> ValidationRunPublic:
    device = devices.device_by_name(session, name)
    run_id = validations.create_run(session, device, body, utcnow())
    return validations.list_runs(session, [device.id], limit_per_device=1, run_id=run_id)[0]


@router.get("/{name}/validations", response_model=ValidationRunsPublic)
def get_validations(
    name: str,
    _: ReaderPrincipal,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=200, description="newest runs first")] = 20,
) -> ValidationRunsPublic:
    device = devices.device_by_name(session, name)
    data = validations.list_runs(session, [device.id], limit_per_device=limit)
    return ValidationRunsPublic(device=device.name, data=data, count=len(data))
