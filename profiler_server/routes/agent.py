"""The agent side of the protocol (device token): lease tasks, post results, upload offline measurements."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from profiler_server.clock import utcnow
from profiler_server.config import Settings
from profiler_server.deps import DatabaseDep, DevicePrincipal, SettingsDep
from profiler_server.errors import BadRequest
from profiler_server.json_body import json_body, openapi_json_body
from profiler_server.openapi import WITH_BODY, errors
from profiler_server.schemas import (
    LeaseRelease,
    LeaseRequest,
    LeaseResponse,
    MeasurementsPost,
    ReleaseReceipt,
    ResultsPost,
    ResultsReceipt,
)
from profiler_server.services import ingest, leasing

router = APIRouter(prefix="/agent", tags=["agent"])


def _limits(settings: Settings) -> ingest.IngestLimits:
    return ingest.IngestLimits(
        max_samples_per_result=settings.max_samples_per_result,
        max_results_per_request=settings.max_results_per_request,
        unstable_iqr_ratio=settings.unstable_iqr_ratio,
    )


# Every route takes the principal first and its body from `json_body`: a request without a valid token is a 401
# before its body is read.
@router.post(
    "/lease",
    response_model=LeaseResponse,
    responses=errors(*WITH_BODY),
    openapi_extra=openapi_json_body(LeaseRequest),
)
async def lease(
    device: DevicePrincipal,
    body: Annotated[LeaseRequest, Depends(json_body(LeaseRequest))],
    request: Request,
    settings: SettingsDep,
    database: DatabaseDep,
) -> LeaseResponse:
    if body.max_tasks > settings.max_lease_tasks:
        raise BadRequest(
            f"max_tasks {body.max_tasks} exceeds the limit {settings.max_lease_tasks}", "max_tasks"
        )
    device_id = device.require_device()
    now = utcnow()
    tasks = await database.write(
        lambda session: leasing.lease_tasks(
            session, device_id, body.max_tasks, settings.lease_seconds, settings.max_attempts, now
        )
    )
    request.app.state.metrics.count("tasks_leased", len(tasks))
    return LeaseResponse(tasks=tasks, lease_seconds=settings.lease_seconds)


@router.post(
    "/release",
    response_model=ReleaseReceipt,
    responses=errors(*WITH_BODY),
    openapi_extra=openapi_json_body(LeaseRelease),
)
async def release(
    device: DevicePrincipal,
    body: Annotated[LeaseRelease, Depends(json_body(LeaseRelease))],
    request: Request,
    settings: SettingsDep,
    database: DatabaseDep,
) -> ReleaseReceipt:
    if len(body.task_ids) > settings.max_lease_tasks:
        raise BadRequest(
            f"{len(body.task_ids)} task_ids exceed the limit {settings.max_lease_tasks}", "task_ids"
        )
    device_id = device.require_device()
    released = await database.write(lambda session: leasing.release_tasks(session, device_id, body.task_ids))
    request.app.state.metrics.count("tasks_released", released)
    return ReleaseReceipt(released=released)


@router.post(
    "/results",
    response_model=ResultsReceipt,
    responses=errors(*WITH_BODY, 404, 409),
    openapi_extra=openapi_json_body(ResultsPost),
)
async def post_results(
    device: DevicePrincipal,
    body: Annotated[ResultsPost, Depends(json_body(ResultsPost))],
    request: Request,
    settings: SettingsDep,
    database: DatabaseDep,
) -> ResultsReceipt:
    device_id = device.require_device()
    now = utcnow()
    receipt = await database.write(
        lambda session: ingest.ingest_task_results(
            database.storage, session, device_id, body.results, _limits(settings), now
        )
    )
    _after_ingest(request, device_id, receipt)
    return receipt


@router.post(
    "/measurements",
    response_model=ResultsReceipt,
    responses=errors(*WITH_BODY, 404, 409),
    openapi_extra=openapi_json_body(MeasurementsPost),
)
async def post_measurements(
    device: DevicePrincipal,
    body: Annotated[MeasurementsPost, Depends(json_body(MeasurementsPost))],
    request: Request,
    settings: SettingsDep,
    database: DatabaseDep,
) -> ResultsReceipt:
    device_id = device.require_device()
    now = utcnow()
    receipt = await database.write(
        lambda session: ingest.ingest_offline(
            database.storage, session, device_id, body.results, _limits(settings), now
        ),
        begin=False,
    )
    _after_ingest(request, device_id, receipt)
    return receipt


def _after_ingest(request: Request, device_id: int, receipt: ResultsReceipt) -> None:
    if receipt.accepted:
        # Committed: drop this process's cached LUT version before the response tells the agent it is stored.
        request.app.state.lut_versions.invalidate(device_id)
    metrics = request.app.state.metrics
    metrics.count("measurements_ingested", receipt.accepted)
    metrics.count("measurement_duplicates", receipt.duplicates)
    metrics.count("task_failures_reported", receipt.failures)
