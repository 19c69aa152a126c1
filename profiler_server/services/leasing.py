"""Leasing tasks to a device's agents: FIFO per device, never one task to two agents, expired leases re-queued.

Exclusivity comes from the database: PostgreSQL locks the chosen rows with `FOR UPDATE SKIP LOCKED` (concurrent
leases pick different rows); SQLite runs the whole lease inside `BEGIN IMMEDIATE` (see `db.session`), so leases
are serialised by its write lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, select, update
from sqlalchemy.orm import Session

from db.models import Device, Op, OpArtifact, Task, TaskStatus
from fbnet_core.model_formats import DEFAULT_FORMAT
from profiler_server.errors import Forbidden, NotFound
from profiler_server.schemas import LeasedTask


def task_state(now: datetime) -> ColumnElement[str]:
    """A task's status as it stands at `now`: an expired lease is back in the queue, although its row says
    `leased` until the device's next lease call re-queues it (or fails it, once its attempts are spent)."""
    expired = and_(Task.status == TaskStatus.leased, Task.lease_expires_at < now)
    return case((expired, TaskStatus.queued.value), else_=Task.status)


def reclaim_expired(session: Session, device_id: int, max_attempts: int, now: datetime) -> int:
    """Put expired leases of the device back in the queue, or fail them once their attempts are spent."""
    expired = (Task.device_id == device_id, Task.status == TaskStatus.leased, Task.lease_expires_at < now)
    failed = session.execute(
        update(Task)
        .where(*expired, Task.attempts >= max_attempts)
        .values(
            status=TaskStatus.failed,
            finished_at=now,
            lease_expires_at=None,
            failure_reason=f"lease expired without a result {max_attempts} times",
        )
    ).rowcount
    requeued = session.execute(
        update(Task).where(*expired).values(status=TaskStatus.queued, lease_expires_at=None)
    ).rowcount
    return failed + requeued


def lease_tasks(
    session: Session, device_id: int, max_tasks: int, lease_seconds: float, max_attempts: int, now: datetime
) -> list[LeasedTask]:
    reclaim_expired(session, device_id, max_attempts, now)
    task_ids = list(
        session.scalars(
            select(Task.id)
            .where(Task.device_id == device_id, Task.status == TaskStatus.queued)
            .order_by(Task.id)
            .limit(max_tasks)
            .with_for_update(skip_locked=True)
        )
    )
    expires_at = now + timedelta(seconds=lease_seconds)
    if task_ids:
        session.execute(
            update(Task)
            .where(Task.id.in_(task_ids))
            .values(
                status=TaskStatus.leased,
                attempts=Task.attempts + 1,
                leased_at=now,
                lease_expires_at=expires_at,
            )
        )
    session.execute(update(Device).where(Device.id == device_id).values(last_seen_at=now))
    model_format = session.scalar(select(Device.model_format).where(Device.id == device_id)) or DEFAULT_FORMAT
    rows = session.execute(
        select(Task.id, Task.attempts, Op.key, Op.spec, Op.onnx_sha256, OpArtifact.sha256.label("model_sha256"))
        .join(Op, Op.id == Task.op_id)
        # Outer: a task queued before its op lost the file is still handed out (its download then says why).
        .outerjoin(OpArtifact, (OpArtifact.op_id == Op.id) & (OpArtifact.model_format == model_format))
        .where(Task.id.in_(task_ids))
        .order_by(Task.id)
    ).all()
    session.commit()
    return [
        LeasedTask(
            task_id=row.id,
            key=row.key,
            spec=row.spec,
            onnx_sha256=row.onnx_sha256,
            format=model_format,
            model_sha256=row.model_sha256,
            attempt=row.attempts,
            lease_expires_at=expires_at,
        )
        for row in rows
    ]


def release_tasks(session: Session, device_id: int, task_ids: list[int]) -> int:
    """Put the device's leased tasks among `task_ids` back in the queue at once, the attempt not counted (the
    agent stopped before measuring; nothing failed). Tasks no longer leased are left as they are. Returns how
    many were released; an unknown task is a 404, another device's a 403, and then nothing is released."""
    owners = dict(session.execute(select(Task.id, Task.device_id).where(Task.id.in_(set(task_ids)))).all())
    for i, task_id in enumerate(task_ids):
        if task_id not in owners:
            raise NotFound(f"unknown task {task_id}", field=f"task_ids[{i}]")
        if owners[task_id] != device_id:
            raise Forbidden(f"task {task_id} belongs to another device", field=f"task_ids[{i}]")
    released = session.execute(
        update(Task)
        .where(Task.id.in_(set(task_ids)), Task.status == TaskStatus.leased)
        .values(status=TaskStatus.queued, lease_expires_at=None, attempts=Task.attempts - 1)
    ).rowcount
    session.commit()
    return released
