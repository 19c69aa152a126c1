"""Many rows in one INSERT ... ON CONFLICT statement, their values passed straight to the database driver.

SQLAlchemy's executemany processes every parameter of every row in Python and sends one statement per row
(PostgreSQL then plans and executes each one separately): for an ingest batch that cost more than the database's
own work. Here a batch is one statement, its SQL written by the storage (`Storage.insert_rows`: PostgreSQL reads
whole columns as arrays, SQLite takes a multi-row VALUES). Values still go through each column type's bind
processor, so they are stored exactly as the ORM would store them (e.g. SQLite's naive-UTC timestamps, JSON
through the engine's serialiser).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect


def bind_processed(
    dialect: Dialect, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> list[tuple[Any, ...]]:
    """`rows` (values in `columns` order) as the driver receives them."""
    processors = [table.c[name].type.bind_processor(dialect) for name in columns]
    return [tuple(v if p is None or v is None else p(v) for p, v in zip(processors, row, strict=True))
            for row in rows]  # fmt: skip


def conflict_and_returning(conflict_sql: str, returning: tuple[str, ...]) -> str:
    """The statement's tail: `conflict_sql` (an ON CONFLICT clause, or empty) and the RETURNING clause."""
    return f" {conflict_sql}" + (f" RETURNING {', '.join(returning)}" if returning else "")
