"""Many rows in one INSERT ... ON CONFLICT statement, their values passed straight to the database driver.

SQLAlchemy's executemany processes every parameter of every row in Python and sends one statement per row
(PostgreSQL then plans and executes each one separately): for an ingest batch that cost more than the database's
own work. Here a batch is one statement: PostgreSQL reads whole columns as arrays (`unnest`), SQLite takes a
multi-row VALUES. Values still go through each column type's bind processor, so they are stored exactly as the ORM
would store them (e.g. SQLite's naive-UTC timestamps, JSON through the engine's serialiser).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect

# SQLite's default SQLITE_MAX_VARIABLE_NUMBER (since 3.32): a statement holds at most this many parameters.
SQLITE_MAX_PARAMETERS = 32_766


def insert_rows(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    conflict_sql: str,
    returning: tuple[str, ...] = (),
) -> list[tuple[Any, ...]]:
    """INSERT `rows` (values in `columns` order) with `conflict_sql` (an ON CONFLICT clause); returns the
    `returning` columns of the rows actually inserted or updated (unprocessed driver values)."""
    if not rows:
        return []
    dialect = conn.dialect
    processors = _processors(table, columns, dialect)
    processed = [tuple(v if p is None or v is None else p(v) for p, v in zip(processors, row, strict=True))
                 for row in rows]  # fmt: skip
    if dialect.name == "postgresql":
        sql = _postgres_sql(table, columns, conflict_sql, returning, dialect)
        # Column-wise: one array parameter per column.
        result = conn.exec_driver_sql(sql, tuple(list(column) for column in zip(*processed, strict=True)))
        return [tuple(r) for r in result] if returning else []
    out: list[tuple[Any, ...]] = []
    per_statement = SQLITE_MAX_PARAMETERS // len(columns)
    for start in range(0, len(processed), per_statement):
        part = processed[start : start + per_statement]
        sql = _sqlite_sql(table, columns, conflict_sql, returning, len(part))
        result = conn.exec_driver_sql(sql, tuple(v for row in part for v in row))
        if returning:
            out.extend(tuple(r) for r in result)
    return out


def _processors(
    table: Table, columns: tuple[str, ...], dialect: Dialect
) -> list[Callable[[Any], Any] | None]:
    return [table.c[name].type.bind_processor(dialect) for name in columns]


def _tail(conflict_sql: str, returning: tuple[str, ...]) -> str:
    return f" {conflict_sql}" + (f" RETURNING {', '.join(returning)}" if returning else "")


@lru_cache(maxsize=64)
def _postgres_sql(
    table: Table, columns: tuple[str, ...], conflict_sql: str, returning: tuple[str, ...], dialect: Dialect
) -> str:
    # %b: binary arrays. In text form psycopg escapes every element with a regular expression (bytea above all),
    # which cost more than the whole insert.
    arrays = ", ".join(f"%b::{table.c[name].type.compile(dialect)}[]" for name in columns)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})" + _tail(
        conflict_sql, returning
    )


@lru_cache(maxsize=64)
def _sqlite_sql(
    table: Table, columns: tuple[str, ...], conflict_sql: str, returning: tuple[str, ...], n_rows: int
) -> str:
    row = "(" + ", ".join("?" * len(columns)) + ")"
    # VALUES rather than SELECT: SQLite parses `INSERT ... SELECT ... ON CONFLICT` ambiguously.
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {', '.join([row] * n_rows)}" + _tail(
        conflict_sql, returning
    )
