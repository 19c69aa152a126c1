"""The storage on PostgreSQL: a server a round trip away, several writers at once, replicas on one database.

A batch of measurements is stored by one autocommit statement, one round trip: the rules (`storage.rules`)
composed as data-modifying CTEs (a single statement is its own transaction), with the NOTIFY that empties every
replica's cached LUT version when it commits (`services.lut_versions_postgres`). The batch travels as two
parameters: the rows as JSON (`json_to_recordset`; psycopg dumped 24 array parameters element by element in
Python, which costs more than PostgreSQL's parsing of the same rows as JSON) and every row's samples, as float64,
in one binary string that each row slices (base64 text inside the JSON would make PostgreSQL parse far more
bytes). Writers may hold at most three quarters of the turns: a burst of posts never leaves LUT reads without a
connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache, lru_cache
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    Select,
    Table,
    Text,
    bindparam,
    case,
    cast,
    column,
    exists,
    func,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from db.models import Measurement
from profiler_server.services.bulk_rows import bind_processed, conflict_and_returning
from profiler_server.services.lut_versions_postgres import LUT_CHANGED_CHANNEL, PostgresLutVersions
from profiler_server.storage import rules
from profiler_server.storage.batch import BATCH, NewMeasurement, StoreOutcome

if TYPE_CHECKING:
    from profiler_server.database import Database
    from profiler_server.services.lut_versions import LutVersions

_SAMPLE_BYTES = 8  # float64


class PostgresStorage:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write_slots(self, slots: int) -> int:
        return max(1, slots - slots // 4)

    def begin_write(self, session: Session) -> None:
        """Nothing to take up front: row locks are taken by the statements that need them."""

    def autocommit_connection(self) -> Connection:
        # Single-statement reads without BEGIN/ROLLBACK round trips.
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def make_lut_versions(self, database: Database) -> LutVersions:
        return PostgresLutVersions(self.engine, database)

    def insert_rows(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Sequence[Any]],
        conflict_sql: str,
        returning: tuple[str, ...] = (),
    ) -> list[tuple[Any, ...]]:
        if not rows:
            return []
        processed = bind_processed(conn.dialect, table, columns, rows)
        sql = _unnest_sql(table, columns, conflict_sql, returning, conn.dialect)
        # Column-wise: one array parameter per column.
        result = conn.exec_driver_sql(sql, tuple(list(column) for column in zip(*processed, strict=True)))
        return [tuple(r) for r in result] if returning else []

    def store_measurements(
        self, session: Session, device_id: int, rows: list[NewMeasurement], now: datetime
    ) -> StoreOutcome:
        return _store(session.connection(), device_id, rows, now)

    def store_offline(
        self, session: Session, device_id: int, rows: list[NewMeasurement], now: datetime
    ) -> StoreOutcome:
        # Autocommit: the statement commits, NOTIFY included, when it returns.
        return _store(
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"}), device_id, rows, now
        )


def _store(conn: Connection, device_id: int, rows: list[NewMeasurement], now: datetime) -> StoreOutcome:
    sql, constants = _compiled(conn.dialect)
    parameters = {**constants, **_parameters(conn.dialect, device_id, rows, now)}
    ops_valid, accepted, _ = conn.exec_driver_sql(sql, parameters).one()
    return StoreOutcome(ops_valid=ops_valid, accepted=accepted)


@lru_cache(maxsize=4)
def _compiled(dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """The statement as the driver runs it, and the driver values of its constants. Compiled once: SQLAlchemy's
    processing of the parameters at every execution cost more than a millisecond of CPU a batch."""
    compiled = _statement().compile(dialect=dialect)
    constants = {}
    for bind, name in compiled.bind_names.items():
        if name not in _PARAMETERS:
            processor = bind.type.bind_processor(dialect)
            constants[name] = bind.effective_value if processor is None else processor(bind.effective_value)
    return compiled.string, constants


# What `_parameters` passes, as driver values, to the statement's bind parameters of these names.
_PARAMETERS = ("batch", "samples", "device", "now")


def _parameters(
    dialect: Dialect, device_id: int, rows: list[NewMeasurement], now: datetime
) -> dict[str, Any]:
    offsets_bytes = np.cumsum([0] + [len(row.samples_us) * _SAMPLE_BYTES for row in rows]).tolist()
    samples = np.asarray(list(chain.from_iterable(row.samples_us for row in rows)), dtype="<f8")
    # Timestamps as the ORM binds them (aware, UTC; a naive one is refused).
    utc = Measurement.__table__.c.measured_at.type.bind_processor(dialect)
    batch = [_json_row(i, row, offsets_bytes[i], utc(row.measured_at)) for i, row in enumerate(rows)]
    return {
        "batch": orjson.dumps(batch).decode(),
        "samples": samples.tobytes(),
        "device": device_id,
        "now": utc(now),
    }


def _json_row(
    ordinal: int, row: NewMeasurement, samples_offset_bytes: int, measured_at: datetime
) -> dict[str, Any]:
    stats, runtime = row.stats, row.runtime
    return {
        "ordinal": ordinal, "key": row.key, "onnx_sha256": row.onnx_sha256,
        "samples_offset_bytes": samples_offset_bytes, "result_id": row.result_id, "task_id": row.task_id,
        "n": stats.n, "median_us": stats.median_us, "p10_us": stats.p10_us, "p90_us": stats.p90_us,
        "mean_us": stats.mean_us, "std_us": stats.std_us, "iqr_us": stats.iqr_us, "min_us": stats.min_us,
        "max_us": stats.max_us, "cv": stats.cv, "unstable": stats.unstable,
        # Serialised by pydantic straight to JSON: no intermediate dict for orjson to walk again.
        "runtime": orjson.Fragment(runtime.model_dump_json()), "runtime_name": runtime.runtime,
        "runtime_version": runtime.runtime_version, "execution_provider": runtime.execution_provider,
        "threads": runtime.threads, "agent_version": runtime.agent_version, "measured_at": measured_at,
    }  # fmt: skip


@cache
def _statement() -> Select:
    """The rules as one statement; its row: (ops valid, measurements stored, the NOTIFY's null)."""
    carried = [c for c in BATCH.c if c.name != "samples_us_f64le"]
    records = (
        func.json_to_recordset(cast(bindparam("batch", type_=Text), JSON))
        .table_valued(*(column(c.name, c.type) for c in carried), column("samples_offset_bytes", Integer))
        .render_derived(name="b", with_types=True)
    )
    samples = func.substr(
        bindparam("samples", type_=LargeBinary),
        records.c.samples_offset_bytes + 1,
        _SAMPLE_BYTES * records.c.n,
    )
    batch = select(*(records.c[c.name] for c in carried), samples.label("samples_us_f64le")).cte("batch")
    resolved = rules.resolve_ops(batch).cte("resolved")
    checked = rules.ops_valid(resolved).cte("checked")
    valid = select(checked.c.ok).scalar_subquery()
    stored = rules.insert_new(postgresql.insert, resolved, valid).cte("stored")
    # From `resolved`, not `batch`: read once, the batch is not materialised (samples and all) a second time.
    latest = rules.latest_per_op(stored, resolved).subquery("latest")
    any_stored = exists(stored.select())
    lut = rules.point_lut(postgresql.insert, latest).cte("lut")
    queued_done = rules.queued_work_done(stored).cte("queued_done")
    touched = rules.touch_device(any_stored, valid).cte("touched")
    notify = func.pg_notify(LUT_CHANGED_CHANNEL, cast(rules.DEVICE_ID, Text))
    return select(
        valid, select(func.count()).select_from(stored).scalar_subquery(), case((any_stored, notify))
    ).add_cte(lut, queued_done, touched)


@lru_cache(maxsize=64)
def _unnest_sql(
    table: Table, columns: tuple[str, ...], conflict_sql: str, returning: tuple[str, ...], dialect: Dialect
) -> str:
    # %b: binary arrays. In text form psycopg escapes every element with a regular expression (bytea above all),
    # which cost more than the whole insert.
    arrays = ", ".join(f"%b::{table.c[name].type.compile(dialect)}[]" for name in columns)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})" + (
        conflict_and_returning(conflict_sql, returning)
    )
