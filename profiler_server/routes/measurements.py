"""A stored measurement with its raw samples (any reader)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from profiler_server.deps import DatabaseDep, ReaderPrincipal
from profiler_server.openapi import AUTHENTICATED, errors
from profiler_server.schemas import MeasurementPublic, ResultId
from profiler_server.services import measurements

router = APIRouter(prefix="/measurements", tags=["measurements"])


@router.get("/{result_id}", response_model=MeasurementPublic, responses=errors(*AUTHENTICATED, 404, 422))
async def get_measurement(
    result_id: ResultId,
    _: ReaderPrincipal,
    database: DatabaseDep,
    device: Annotated[
        str | None, Query(description="the device that posted it (result ids are per device)")
    ] = None,
) -> MeasurementPublic:
    return await database.read(lambda session: measurements.get_measurement(session, result_id, device))
