"""Device registration, lookup and queue coverage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from db.models import ACTIVE_TASK_STATUSES, Device, LutEntry, Task, TaskStatus
from fbnet_core.model_formats import DEFAULT_FORMAT, DEFAULT_RUNTIME, UnknownFormatError, format_for_runtime
from profiler_server.errors import BadRequest, Conflict, NotFound
from profiler_server.schemas import Coverage, DevicePublic
from profiler_server.security import new_token, token_sha256
from profiler_server.services.leasing import task_state


def device_format(runtime: str, model_format: str | None) -> str:
    """The format a registering device loads: the one it states, else its runtime's (422 for a runtime that has
    no default format and states none)."""
    if model_format is not None:
        return model_format
    try:
        return format_for_runtime(runtime)
    except UnknownFormatError as exc:
        raise BadRequest(str(exc), field="format") from exc


def register_device(
    session: Session,
    name: str,
    platform: str,
    attributes: dict[str, Any],
    now: datetime,
    runtime: str = DEFAULT_RUNTIME,
    model_format: str = DEFAULT_FORMAT,
) -> str:
    """Create the device and return its token (shown once; only its hash is stored)."""
    if session.scalar(select(Device.id).where(Device.name == name)) is not None:
        raise Conflict(f"device {name!r} is already registered", field="name")
    token = new_token()
    session.add(
        Device(
            name=name,
            platform=platform,
            attributes=attributes,
            token_sha256=token_sha256(token),
            created_at=now,
            lut_version=0,
            runtime=runtime,
            model_format=model_format,
        )
    )
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent registration of the same name won the race
        session.rollback()
        raise Conflict(f"device {name!r} is already registered", field="name") from exc
    return token


def device_by_name(session: Session, name: str, field: str = "name") -> Device:
    device = session.scalar(select(Device).where(Device.name == name))
    if device is None:
        raise NotFound(f"unknown device {name!r}", field=field)
    return device


def coverage(session: Session, device_id: int, now: datetime) -> Coverage:
    state = task_state(now)
    by_status = dict(
        session.execute(select(state, func.count()).where(Task.device_id == device_id).group_by(state)).all()
    )
    measured = session.scalar(
        select(func.count()).select_from(LutEntry).where(LutEntry.device_id == device_id)
    )
    active = aliased(Task)
    # Failed ops: a failed task, and neither a measurement nor a newer task in the queue.
    failed = session.scalar(
        select(func.count(func.distinct(Task.op_id))).where(
            Task.device_id == device_id,
            Task.status == TaskStatus.failed,
            ~exists().where(LutEntry.device_id == device_id, LutEntry.op_id == Task.op_id),
            ~exists().where(
                active.device_id == device_id,
                active.op_id == Task.op_id,
                active.status.in_(ACTIVE_TASK_STATUSES),
            ),
        )
    )
    return Coverage(
        measured=measured or 0,
        queued=by_status.get(TaskStatus.queued, 0),
        leased=by_status.get(TaskStatus.leased, 0),
        failed=failed or 0,
    )


def device_public(session: Session, device: Device, now: datetime) -> DevicePublic:
    return DevicePublic(
        name=device.name,
        platform=device.platform,
        runtime=device.runtime,
        format=device.model_format,
        attributes=device.attributes,
        created_at=device.created_at,
        last_seen_at=device.last_seen_at,
        lut_version=device.lut_version,
        coverage=coverage(session, device.id, now),
    )


def list_devices(session: Session, now: datetime) -> list[DevicePublic]:
    devices = session.scalars(select(Device).order_by(Device.name)).all()
    return [device_public(session, d, now) for d in devices]
