"""Jobs: ask for ops to be measured on a device (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from profiler_server.clock import utcnow
from profiler_server.deps import AdminPrincipal, DatabaseDep, SettingsDep
from profiler_server.errors import BadRequest
from profiler_server.json_body import json_body, openapi_json_body
from profiler_server.openapi import WITH_BODY, errors
from profiler_server.schemas import JobsCreate, JobsReceipt
from profiler_server.services import jobs

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post(
    "",
    response_model=JobsReceipt,
    responses=errors(*WITH_BODY, 404),
    openapi_extra=openapi_json_body(JobsCreate),
)
async def create(
    _: AdminPrincipal,
    body: Annotated[JobsCreate, Depends(json_body(JobsCreate))],
    settings: SettingsDep,
    database: DatabaseDep,
) -> JobsReceipt:
    if len(body.keys) > settings.max_keys_per_job:
        raise BadRequest(f"{len(body.keys)} keys; the limit is {settings.max_keys_per_job}", field="keys")
    now = utcnow()
    return await database.write(
        lambda session: jobs.create_jobs(
            database.storage, session, body.device, body.keys, body.remeasure, now
        )
    )
