"""Engine and session factories.

SQLite gets WAL (readers never wait for the writer), a busy timeout (writers queue instead of failing) and foreign
keys. Its transactions are started explicitly: `BEGIN IMMEDIATE` for writing sessions, so that two concurrent
writers (e.g. two agents leasing) serialise on the write lock up front instead of racing and failing with
"database is locked" when a read transaction tries to upgrade.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# Execution option that makes a SQLite transaction begin with `BEGIN IMMEDIATE` (set by the SQLite storage's
# writers, profiler_server/storage/sqlite.py).
SQLITE_IMMEDIATE = "fbnet_sqlite_immediate"


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs (SQLAlchemy would otherwise pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _json_dumps(value: Any) -> str:
    # JSON columns (runtime provenance, op specs): orjson is several times faster than json.dumps here.
    return orjson.dumps(value).decode()


def make_engine(
    database_url: str,
    *,
    sqlite_busy_timeout_ms: int = 5_000,
    pool_size: int = 10,
    pool_timeout_s: float = 5.0,
) -> Engine:
    """`pool_size` connections kept open, as many again on demand; a checkout waits at most `pool_timeout_s`
    (then `sqlalchemy.exc.TimeoutError`, a 503)."""
    url = make_url(normalise_database_url(database_url))
    pool = {"pool_size": pool_size, "max_overflow": pool_size, "pool_timeout": pool_timeout_s}
    if url.get_backend_name() != "sqlite":
        # No pool_pre_ping: it costs a round trip per request (a third of a LUT 304). A connection that died with
        # a database restart fails one request and is dropped; the pool then reconnects.
        return create_engine(
            url, pool_recycle=3600, json_serializer=_json_dumps, json_deserializer=orjson.loads, **pool
        )

    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "isolation_level": None},
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        # An in-memory database (tests) is one connection SQLAlchemy keeps itself: no pool sizes there.
        **({} if url.database in (None, "", ":memory:") else pool),
    )

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(sqlite_busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_sqlite(connection: Any) -> None:
        immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
