"""What the dashboard pages show, read with one query per table (no query per device or per row).

Never selects a token hash or device attributes: nothing secret can reach a page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Device, LutEntry, Op, Task, TaskStatus
from db.models_validation import SearchSpace
from profiler_server.schemas_validation import SpaceCoverage, ValidationRunPublic
from profiler_server.services import spaces as space_service
from profiler_server.services.leasing import task_state
from profiler_server.services.validations import list_runs

RECENT_TASKS = 15
RECENT_FAILURES = 15
RUNS_PER_DEVICE_PAGE = 5


@dataclass(slots=True)
class DeviceRow:
    id: int
    name: str
    platform: str
    runtime: str
    model_format: str
    created_at: datetime
    last_seen_at: datetime | None
    lut_version: int
    lut_entries: int = 0
    tasks: dict[str, int] = field(default_factory=dict)
    coverage: list[SpaceCoverage] = field(default_factory=list)
    latest_run: ValidationRunPublic | None = None


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: int
    device: str
    key: str
    status: str
    attempts: int
    created_at: datetime
    finished_at: datetime | None
    failure_reason: str | None


def devices(session: Session, now: datetime, name: str | None = None) -> list[DeviceRow]:
    """Devices (all, or the one named) with LUT size, tasks by status, coverage per space and latest run."""
    query = select(
        Device.id, Device.name, Device.platform, Device.runtime, Device.model_format, Device.created_at,
        Device.last_seen_at, Device.lut_version,
    ).order_by(Device.name)
    if name is not None:
        query = query.where(Device.name == name)
    rows = {r.id: DeviceRow(*r) for r in session.execute(query)}
    if not rows:
        return []
    ids = list(rows)
    entries = select(LutEntry.device_id, func.count()).where(LutEntry.device_id.in_(ids))
    for device_id, count in session.execute(entries.group_by(LutEntry.device_id)):
        rows[device_id].lut_entries = count
    state = task_state(now)
    by_status = select(Task.device_id, state, func.count()).where(Task.device_id.in_(ids))
    for device_id, status, count in session.execute(by_status.group_by(Task.device_id, state)):
        rows[device_id].tasks[TaskStatus(status).value] = count
    for (device_id, _space_id), cov in sorted(
        space_service.coverage(session, now, device_ids=ids).items(), key=lambda item: item[1].space
    ):
        rows[device_id].coverage.append(cov)
    by_name = {r.name: r for r in rows.values()}
    for run in list_runs(session, ids, limit_per_device=1, with_points=False):
        by_name[run.device].latest_run = run
    return list(rows.values())


def _task_rows(session: Session, where: Sequence[object], order: object, limit: int) -> list[TaskRow]:
    query = (
        select(
            Task.id,
            Device.name,
            Op.key,
            Task.status,
            Task.attempts,
            Task.created_at,
            Task.finished_at,
            Task.failure_reason,
        )
        .join(Device, Device.id == Task.device_id)
        .join(Op, Op.id == Task.op_id)
        .where(*where)
        .order_by(order)
        .limit(limit)
    )
    return [TaskRow(r[0], r[1], r[2], TaskStatus(r[3]).value, *r[4:]) for r in session.execute(query)]


def recent_tasks(session: Session, device_id: int | None = None) -> list[TaskRow]:
    where = [Task.device_id == device_id] if device_id is not None else []
    return _task_rows(session, where, Task.id.desc(), RECENT_TASKS)


def recent_failures(session: Session, device_id: int | None = None) -> list[TaskRow]:
    where: list[object] = [Task.status == TaskStatus.failed]
    if device_id is not None:
        where.append(Task.device_id == device_id)
    return _task_rows(session, where, Task.finished_at.desc(), RECENT_FAILURES)


def spaces(session: Session) -> list[SearchSpace]:
    return space_service.list_spaces(session)


def pending_states(session: Session, device_id: int, keys: Sequence[str], now: datetime) -> dict[str, str]:
    """Task state of each key without a measurement: queued or leased wins over an older failure."""
    rows = session.execute(
        select(Op.key, task_state(now))
        .join(Op, Op.id == Task.op_id)
        .where(
            Task.device_id == device_id,
            Task.status.in_((TaskStatus.queued, TaskStatus.leased, TaskStatus.failed)),
            Op.key.in_(keys),
        )
    )
    states: dict[str, str] = defaultdict(str)
    for key, status in rows:
        value = TaskStatus(status).value
        if states[key] in ("", "failed"):
            states[key] = value
    return dict(states)


def validation_runs(session: Session, device_id: int) -> list[ValidationRunPublic]:
    return list_runs(session, [device_id], limit_per_device=RUNS_PER_DEVICE_PAGE)
