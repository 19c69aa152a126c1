"""Jobs: ask for ops to be measured on a device (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from profiler_server.clock import utcnow
from profiler_server.deps import AdminPrincipal, SettingsDep, WriteSession
from profiler_server.errors import BadRequest
from profiler_server.schemas import JobsCreate, JobsReceipt
from profiler_server.services import jobs

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post("", response_model=JobsReceipt)
def create(body: JobsCreate, _: AdminPrincipal, settings: SettingsDep, session: WriteSession) -> JobsReceipt:
    if len(body.keys) > settings.max_keys_per_job:
        raise BadRequest(f"{len(body.keys)} keys; the limit is {settings.max_keys_per_job}", field="keys")
    return jobs.create_jobs(session, body.device, body.keys, body.remeasure, utcnow())
