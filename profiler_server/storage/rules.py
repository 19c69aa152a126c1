"""The rules of storing a batch of new measurements, written once as SQLAlchemy Core statements both databases run.

Design: the rules are set-based statements over the batch (`storage.batch.BATCH`'s columns), built here and
composed by each storage. PostgreSQL composes them into one statement of data-modifying CTEs (one round trip per
batch: on a busy host the round trips of separate statements cost more than the database's own work); SQLite,
which has no data-modifying CTEs and no round trips to save, runs the same statements one after another in its
write transaction, the measurements it stored standing in for the CTE. What differs between the two is only how
the batch and the stored rows travel, never a condition or which row wins.

The rules:
- `resolve_ops`, `ops_valid`: every key names an op with the claimed model, or nothing is written (the caller then
  looks the ops up to say which result is at fault); ops are found by index, one probe per row (with the ops
  table's statistics stale, after an upload of many ops, PostgreSQL's planner hashed the whole table instead);
- `insert_new`: the measurements not stored yet - a result_id is new per device unless a measurement or a failure
  report of the device has it - inserted in result_id order, so concurrent overlapping batches wait for each
  other instead of deadlocking;
- `latest_per_op`, `point_lut`: per op, the batch's last new measurement (request order) becomes the LUT's entry,
  unless the LUT holds one received later (a request that arrived earlier but commits later changes nothing);
- `queued_work_done`: a measurement without a task makes the device's queued (not yet leased) tasks for its op
  redundant;
- `touch_device`: the device was seen; its LUT version moves when a measurement was stored.

The statements take the device's id and the receive time as the bind parameters `device` and `now`.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    ScalarSelect,
    Select,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.schema import Table

from db.models import Device, LutEntry, Measurement, Op, Task, TaskStatus
from profiler_server.storage.batch import VALUE_COLUMNS

# The INSERT of either dialect module: both have the same ON CONFLICT API.
Upsert = postgresql.Insert | sqlite.Insert
InsertFactory = Callable[[Table], Upsert]

DEVICE_ID = bindparam("device", type_=Integer)
NOW = bindparam("now", type_=Measurement.__table__.c.received_at.type)
# What `insert_new` returns of each stored measurement: the other rules read these.
STORED_COLUMNS = ("id", "result_id", "op_id", "task_id")


def resolve_ops(batch: FromClause) -> Select:
    """The batch with each row's op id and model (None: no op has the key)."""

    def of_key(column: ColumnElement) -> ScalarSelect:
        return select(column).where(Op.key == batch.c.key).scalar_subquery()

    return select(batch, of_key(Op.id).label("op_id"), of_key(Op.onnx_sha256).label("stored_sha256"))


def ops_valid(resolved: FromClause) -> Select:
    """One row, `ok`: every row's key names an op with the claimed model (true for an empty batch)."""
    valid_row = and_(resolved.c.op_id.is_not(None), resolved.c.onnx_sha256 == resolved.c.stored_sha256)
    # Never correlated: inside a statement that reads `resolved` too, it still judges the whole batch.
    ok = func.coalesce(func.min(case((valid_row, 1), else_=0)), 1) == 1
    return select(ok.label("ok")).correlate(None)


def insert_new(insert: InsertFactory, resolved: FromClause, valid: ColumnElement[bool]) -> Upsert:
    """INSERT the batch's measurements not stored yet (none unless `valid`), RETURNING `STORED_COLUMNS`."""
    reported_failure = exists().where(
        Task.device_id == DEVICE_ID, Task.failure_result_id == resolved.c.result_id
    )
    rows = (
        select(
            DEVICE_ID,
            resolved.c.op_id,
            resolved.c.samples_us_f64le,
            NOW,
            *(resolved.c[n] for n in VALUE_COLUMNS),
        )
        .where(valid, ~reported_failure)
        .order_by(resolved.c.result_id)
    )
    columns = ["device_id", "op_id", "samples_us_f64le", "received_at", *VALUE_COLUMNS]
    return (
        insert(Measurement.__table__)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=["device_id", "result_id"])
        .returning(*(Measurement.__table__.c[name] for name in STORED_COLUMNS))
    )


def latest_per_op(stored: FromClause, batch: FromClause) -> Select:
    """(op_id, id): per op, the stored measurement that came last in the request (`batch`: the batch's rows, or
    any selection of them with `result_id` and `ordinal`)."""
    ranked = (
        select(
            stored.c.op_id,
            stored.c.id,
            func.row_number()
            .over(partition_by=stored.c.op_id, order_by=batch.c.ordinal.desc())
            .label("from_last"),
        )
        .join_from(stored, batch, batch.c.result_id == stored.c.result_id)
        .subquery("ranked")
    )
    return select(ranked.c.op_id, ranked.c.id).where(ranked.c.from_last == 1)


def point_lut(insert: InsertFactory, latest: FromClause) -> Upsert:
    """Point the device's LUT at `latest` (op_id, id), unless it holds a measurement received later; in op order,
    so concurrent requests take the rows' locks in the same order."""
    # WHERE true: SQLite would read `ON CONFLICT` after a bare FROM as a join constraint.
    rows = select(DEVICE_ID, latest.c.op_id, latest.c.id, NOW).where(true()).order_by(latest.c.op_id)
    statement = insert(LutEntry.__table__).from_select(
        ["device_id", "op_id", "measurement_id", "received_at"], rows
    )
    return statement.on_conflict_do_update(
        index_elements=["device_id", "op_id"],
        set_={
            "measurement_id": statement.excluded.measurement_id,
            "received_at": statement.excluded.received_at,
        },
        where=LutEntry.received_at <= statement.excluded.received_at,
    )


def queued_work_done(stored: FromClause) -> Update:
    """The device's queued tasks for an op measured without a task are done."""
    return (
        update(Task)
        .where(
            Task.device_id == DEVICE_ID,
            Task.status == TaskStatus.queued,
            Task.op_id.in_(select(stored.c.op_id).where(stored.c.task_id.is_(None))),
        )
        .values(status=TaskStatus.done, finished_at=NOW)
    )


def touch_device(changed: ColumnElement[bool], valid: ColumnElement[bool]) -> Update:
    """The device was seen now (if the batch is `valid`); `changed`: a measurement was stored, its LUT version
    moves."""
    return (
        update(Device)
        .where(Device.id == DEVICE_ID, valid)
        .values(last_seen_at=NOW, lut_version=Device.lut_version + case((changed, 1), else_=0))
    )
