"""Alembic environment: online migrations on the URL handed over by `db.migrate`."""

from __future__ import annotations

from alembic import context

from db.models import Base
from db.session import SQLITE_IMMEDIATE, make_engine

config = context.config
target_metadata = Base.metadata
# Server replicas starting together all run the migrations: they queue (PostgreSQL: on this advisory lock, held
# until the migration transaction ends; SQLite: on the write lock), so the first migrates and the others find
# the schema at head.
MIGRATION_LOCK_ID = 0x46424E4554  # "FBNET"
# SQLite: how long a replica queues behind another's migration before it gives up. Longer than a request's 5 s: a
# migration holds the write lock for all its revisions (seconds on a loaded machine, more where it moves blobs).
MIGRATION_BUSY_TIMEOUT_MS = 120_000


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"), sqlite_busy_timeout_ms=MIGRATION_BUSY_TIMEOUT_MS)
    try:
        with engine.connect() as conn:
            # SQLite: take the write lock with the first statement, so concurrent migrations queue on it.
            conn.execution_options(**{SQLITE_IMMEDIATE: True})
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported: run `profiler-server migrate`")
run_migrations_online()
