"""Jobs: queue one task per (device, op) that needs measuring."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from db.models import ACTIVE_TASK_STATUSES, LutEntry, Op, OpArtifact, Task, TaskStatus
from fbnet_core.model_formats import FORMAT_SUFFIX
from profiler_server.errors import Conflict, NotFound
from profiler_server.schemas import JobsReceipt
from profiler_server.services.devices import device_by_name
from profiler_server.storage import Storage

# Keeps IN (...) lists under every backend's bound-parameter limit.
IN_CHUNK = 5_000
_TASK_COLUMNS = ("device_id", "op_id", "status", "attempts", "created_at")
# The partial unique index `uq_tasks_active_device_op`: one queued-or-leased task per (device, op).
_SKIP_ACTIVE = "ON CONFLICT (device_id, op_id) WHERE status IN ('queued', 'leased') DO NOTHING"


def chunks(items: list[str] | list[int], size: int = IN_CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def op_ids_by_key(session: Session, keys: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in chunks(keys):
        found.update(session.execute(select(Op.key, Op.id).where(Op.key.in_(part))).all())
    return found


def _op_ids_where(
    session: Session,
    column: InstrumentedAttribute[int],
    op_ids: Iterable[int],
    *conditions: ColumnElement[bool],
) -> set[int]:
    found: set[int] = set()
    for part in chunks(sorted(set(op_ids))):
        found.update(session.scalars(select(column).where(column.in_(part), *conditions)))
    return found


def create_jobs(
    storage: Storage, session: Session, device_name: str, keys: list[str], remeasure: bool, now: datetime
) -> JobsReceipt:
    device = device_by_name(session, device_name, field="device")
    unique_keys = list(dict.fromkeys(keys))
    ids = op_ids_by_key(session, unique_keys)
    unknown = [k for k in unique_keys if k not in ids]
    if unknown:
        position = keys.index(unknown[0])
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise NotFound(
            f"unknown op key {unknown[0]!r}{more}: upload it with POST /ops first", f"keys[{position}]"
        )
    # The device's agent is leased the op's file in its format: an op without one could never be measured.
    with_format = _op_ids_where(
        session, OpArtifact.op_id, ids.values(), OpArtifact.model_format == device.model_format
    )
    lacking = [key for key in unique_keys if ids[key] not in with_format]
    if lacking:
        more = f" and {len(lacking) - 1} more" if len(lacking) > 1 else ""
        raise Conflict(
            f"device {device.name!r} runs {device.runtime} on {FORMAT_SUFFIX[device.model_format]} files, which "
            f"op {lacking[0]!r}{more} lacks: compile and upload them with "
            f"`dnas lut request --device {device.name} --format {device.model_format}`",
            f"keys[{keys.index(lacking[0])}]",
        )

    active = _op_ids_where(
        session, Task.op_id, ids.values(), Task.device_id == device.id, Task.status.in_(ACTIVE_TASK_STATUSES)
    )
    measured = _op_ids_where(session, LutEntry.op_id, ids.values(), LutEntry.device_id == device.id)
    to_queue = sorted(
        op_id for op_id in ids.values() if op_id not in active and (remeasure or op_id not in measured)
    )
    rows = [(device.id, op_id, TaskStatus.queued, 0, now) for op_id in to_queue]
    # A concurrent request may queue the same ops between the reads above and this insert: the active-task index
    # keeps one, and this request counts the others as already queued.
    queued = len(
        storage.insert_rows(session.connection(), Task.__table__, _TASK_COLUMNS, rows, _SKIP_ACTIVE, ("id",))
    )
    session.commit()
    return JobsReceipt(
        device=device.name,
        queued=queued,
        already_measured=0 if remeasure else len(measured - active),
        already_queued=len(active) + len(to_queue) - queued,
    )
