"""Everything that differs between SQLite and PostgreSQL, behind one interface chosen once from the engine.

Callers ask the `Storage` (kept on the `Database`, `app.state.database.storage`); no other module of the server
asks which database it runs on. The implementations: `storage.sqlite`, `storage.postgres`; the rules of storing
measurements, which both run: `storage.rules`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.orm import Session

from profiler_server.storage.batch import NewMeasurement, StoreOutcome
from profiler_server.storage.postgres import PostgresStorage
from profiler_server.storage.sqlite import SqliteStorage

if TYPE_CHECKING:
    from profiler_server.database import Database
    from profiler_server.services.lut_versions import LutVersions


class Storage(Protocol):
    engine: Engine

    def write_slots(self, slots: int) -> int:
        """How many of the `slots` database turns writers may hold at once."""

    def begin_write(self, session: Session) -> None:
        """Start the session's transaction as a writer (SQLite: takes the write lock now)."""

    def autocommit_connection(self) -> Connection:
        """A connection for single-statement reads, without BEGIN/ROLLBACK round trips to a database server."""

    def make_lut_versions(self, database: Database) -> LutVersions:
        """Where conditional GETs learn a device's current LUT version (`services.lut_versions`)."""

    def insert_rows(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Sequence[Any]],
        conflict_sql: str,
        returning: tuple[str, ...] = (),
    ) -> list[tuple[Any, ...]]:
        """INSERT `rows` (values in `columns` order) in one statement with `conflict_sql` (an ON CONFLICT clause,
        or empty); returns the `returning` columns of the rows inserted or updated (unprocessed driver values).
        See `services.bulk_rows`."""

    def store_measurements(
        self, session: Session, device_id: int, rows: list[NewMeasurement], now: datetime
    ) -> StoreOutcome:
        """Store the device's new measurements by the rules of `storage.rules`, in the session's write transaction
        (begun; the caller commits, which announces a changed LUT version to every replica)."""

    def store_offline(
        self, session: Session, device_id: int, rows: list[NewMeasurement], now: datetime
    ) -> StoreOutcome:
        """`store_measurements` in a transaction of its own, committed when it returns (rolled back when the ops
        are not valid); `session` has not begun one."""


def make_storage(engine: Engine) -> Storage:
    if engine.dialect.name == "postgresql":
        return PostgresStorage(engine)
    return SqliteStorage(engine)
