"""LUT versions on SQLite: read on every request, through a connection kept for that alone.

The connection is the engine's (same file, pragmas), detached from the pool: checking a connection out of the pool
would cost more than the read. It runs in autocommit, so each read sees the latest commit of any process.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import sqlite

from profiler_server.services.lut import VERSION_QUERY, LutVersion, version_from_row

_VERSION_SQL = str(VERSION_QUERY.compile(dialect=sqlite.dialect()))


class SqliteLutVersions:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()  # one sqlite3 connection must not run two statements at once
        self._conn: sqlite3.Connection | None = None  # opened on first use: an app may never serve a request

    def local(self, device_name: str) -> LutVersion | None:
        row = self._row(device_name)
        return None if row is None else version_from_row(row, device_name)

    async def current(self, device_name: str) -> LutVersion:
        # Inline on the event loop: one local indexed read costs less than a hop to a worker thread.
        return version_from_row(self._row(device_name), device_name)

    def invalidate(self, device_id: int) -> None:
        """Nothing is cached."""

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _row(self, device_name: str) -> Any:
        with self._lock:
            if self._conn is None:
                raw = self._engine.raw_connection()
                self._conn = raw.driver_connection
                raw.detach()  # ours for good, closed by `close`
            assert self._conn is not None
            return self._conn.execute(_VERSION_SQL, (device_name,)).fetchone()
