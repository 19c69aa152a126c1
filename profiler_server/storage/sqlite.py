"""The storage on SQLite: one local file, one writer at a time, statements that cost no round trip.

Writers take the write lock up front (`BEGIN IMMEDIATE`, see `db.session`), after this process's earlier writers
(one write slot): two writers never race to upgrade a read transaction. A batch of measurements goes into a
temporary table of `storage.batch.BATCH`'s shape, then the rules (`storage.rules`) run on it one statement after
another, the measurements they stored found again by their ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, Engine, Select, Table, Update, bindparam, delete, exists, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable

from db.models import Measurement
from db.session import SQLITE_IMMEDIATE
from profiler_server.services.bulk_rows import bind_processed, conflict_and_returning
from profiler_server.services.lut_versions_sqlite import SqliteLutVersions
from profiler_server.storage import rules
from profiler_server.storage.batch import BATCH, VALUE_COLUMNS, NewMeasurement, StoreOutcome
from profiler_server.storage.rules import Upsert

if TYPE_CHECKING:
    from profiler_server.database import Database
    from profiler_server.services.lut_versions import LutVersions

# SQLite's default SQLITE_MAX_VARIABLE_NUMBER (since 3.32): a statement holds at most this many parameters.
SQLITE_MAX_PARAMETERS = 32_766

_BATCH_COLUMNS = ("ordinal", "key", "onnx_sha256", "samples_us_f64le", *VALUE_COLUMNS)


@dataclass(frozen=True, slots=True)
class _Statements:
    create_batch: str
    empty_batch: str
    ops_valid: Select
    insert_new: Upsert
    point_lut: Upsert
    queued_work_done: Update
    touch_device: Update


@cache
def _statements() -> _Statements:
    """The rules over the batch table, built once; the stored measurements are those with ids from `first_id` to
    `last_id`."""
    dialect = sqlite.dialect()
    resolved = rules.resolve_ops(BATCH).subquery("resolved")
    valid = rules.ops_valid(resolved).scalar_subquery()
    stored_ids = Measurement.id.between(bindparam("first_id"), bindparam("last_id"))
    stored = (
        select(*(Measurement.__table__.c[name] for name in rules.STORED_COLUMNS))
        .where(stored_ids, Measurement.device_id == rules.DEVICE_ID)
        .subquery("stored")
    )
    return _Statements(
        create_batch=str(CreateTable(BATCH, if_not_exists=True).compile(dialect=dialect)),
        empty_batch=str(delete(BATCH).compile(dialect=dialect)),
        ops_valid=select(valid),
        insert_new=rules.insert_new(sqlite.insert, resolved, valid),
        point_lut=rules.point_lut(sqlite.insert, rules.latest_per_op(stored, BATCH).subquery("latest")),
        queued_work_done=rules.queued_work_done(stored),
        touch_device=rules.touch_device(exists(stored.select()), valid),
    )


class SqliteStorage:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write_slots(self, slots: int) -> int:
        return 1  # the database's single write lock, queued for in process

    def begin_write(self, session: Session) -> None:
        session.connection(execution_options={SQLITE_IMMEDIATE: True})

    def autocommit_connection(self) -> Connection:
        # SQLite keeps its (local, cheap) transaction: switching its isolation level back and forth costs more.
        return self.engine.connect()

    def make_lut_versions(self, database: Database) -> LutVersions:
        return SqliteLutVersions(self.engine)

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
        out: list[tuple[Any, ...]] = []
        per_statement = SQLITE_MAX_PARAMETERS // len(columns)
        for start in range(0, len(processed), per_statement):
            part = processed[start : start + per_statement]
            sql = _values_sql(table, columns, conflict_sql, returning, len(part))
            result = conn.exec_driver_sql(sql, tuple(v for row in part for v in row))
            if returning:
                out.extend(tuple(r) for r in result)
        return out

    def store_measurements(
        self, session: Session, device_id: int, rows: list[NewMeasurement], now: datetime
    ) -> StoreOutcome:
        statements = _statements()
        conn = session.connection()
        conn.exec_driver_sql(statements.create_batch)
        conn.exec_driver_sql(statements.empty_batch)
        self.insert_rows(conn, BATCH, _BATCH_COLUMNS, [_batch_row(i, row) for i, row in enumerate(rows)], "")
        if not conn.scalar(statements.ops_valid):
            return StoreOutcome(ops_valid=False, accepted=0)
        params: dict[str, Any] = {"device": device_id, "now": now}
        ids = list(conn.scalars(statements.insert_new, params))
        # Under the write lock nothing else inserts measurements: the ids from the first to the last stored one
        # are this batch's.
        params.update(first_id=min(ids, default=0), last_id=max(ids, default=-1))
        if ids:
            conn.execute(statements.point_lut, params)
            conn.execute(statements.queued_work_done, params)
        conn.execute(statements.touch_device, params)
        return StoreOutcome(ops_valid=True, accepted=len(ids))

    def store_offline(
        self, session: Session, device_id: int, rows: list[NewMeasurement], now: datetime
    ) -> StoreOutcome:
        self.begin_write(session)
        outcome = self.store_measurements(session, device_id, rows, now)
        if outcome.ops_valid:
            session.commit()
        else:
            session.rollback()
        return outcome


def _batch_row(ordinal: int, row: NewMeasurement) -> tuple[Any, ...]:
    stats, runtime = row.stats, row.runtime
    return (
        ordinal, row.key, row.onnx_sha256, np.asarray(row.samples_us, dtype="<f8").tobytes(),
        row.result_id, row.task_id, stats.n, stats.median_us, stats.p10_us, stats.p90_us, stats.mean_us,
        stats.std_us, stats.iqr_us, stats.min_us, stats.max_us, stats.cv, stats.unstable,
        runtime.model_dump(mode="json"), runtime.runtime, runtime.runtime_version, runtime.execution_provider,
        runtime.threads, runtime.agent_version, row.measured_at,
    )  # fmt: skip


@lru_cache(maxsize=64)
def _values_sql(
    table: Table, columns: tuple[str, ...], conflict_sql: str, returning: tuple[str, ...], n_rows: int
) -> str:
    row = "(" + ", ".join("?" * len(columns)) + ")"
    # VALUES rather than SELECT: SQLite parses `INSERT ... SELECT ... ON CONFLICT` ambiguously.
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {', '.join([row] * n_rows)}" + (
        conflict_and_returning(conflict_sql, returning)
    )
