"""Leasing tasks to a device's agents: FIFO per device, never one task to two agents, expired leases re-queued.

Exclusivity comes from the database: PostgreSQL locks the chosen rows with `FOR UPDATE SKIP LOCKED` (concurrent
leases pick different rows); SQLite runs the whole lease inside `BEGIN IMMEDIATE` (see `db.session`), so leases
are serialised by its write lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import Device, Op, Task, TaskStatus
from profiler_server.schemas import LeasedTask


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
    rows = session.execute(
        select(Task.id, Task.attempts, Op.key, Op.spec, Op.onnx_sha256)
        .join(Op, Op.id == Task.op_id)
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
            attempt=row.attempts,
            lease_expires_at=expires_at,
        )
        for row in rows
    ]
