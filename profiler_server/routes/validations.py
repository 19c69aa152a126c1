"""Validation runs per device: the admin posts points, the server computes and keeps the summary."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.orm import Session

from profiler_server.clock import utcnow
from profiler_server.deps import AdminPrincipal, DatabaseDep, ReaderPrincipal
from profiler_server.json_body import json_body, openapi_json_body
from profiler_server.openapi import AUTHENTICATED, WITH_BODY, errors
from profiler_server.schemas_validation import ValidationCreate, ValidationRunPublic, ValidationRunsPublic
from profiler_server.services import devices, validations

router = APIRouter(prefix="/devices", tags=["validations"])


def _create(session: Session, name: str, body: ValidationCreate) -> ValidationRunPublic:
    device = devices.device_by_name(session, name)
    run_id = validations.create_run(session, device, body, utcnow())
    return validations.list_runs(session, [device.id], limit_per_device=1, run_id=run_id)[0]


@router.post(
    "/{name}/validations",
    status_code=status.HTTP_201_CREATED,
    response_model=ValidationRunPublic,
    responses=errors(*WITH_BODY, 404),
    openapi_extra=openapi_json_body(ValidationCreate),
)
async def post_validation(
    name: str,
    _: AdminPrincipal,
    body: Annotated[ValidationCreate, Depends(json_body(ValidationCreate))],
    database: DatabaseDep,
) -> ValidationRunPublic:
    return await database.write(lambda session: _create(session, name, body))


def _runs(session: Session, name: str, limit: int) -> ValidationRunsPublic:
    device = devices.device_by_name(session, name)
    data = validations.list_runs(session, [device.id], limit_per_device=limit)
    return ValidationRunsPublic(device=device.name, data=data, count=len(data))


@router.get("/{name}/validations", response_model=ValidationRunsPublic, responses=errors(*AUTHENTICATED, 404, 422))
async def get_validations(
    name: str,
    _: ReaderPrincipal,
    database: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=200, description="newest runs first")] = 20,
) -> ValidationRunsPublic:
    return await database.read(lambda session: _runs(session, name, limit))
