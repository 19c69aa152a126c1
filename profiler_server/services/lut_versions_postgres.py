"""LUT versions on PostgreSQL: cached per process, invalidated by LISTEN/NOTIFY.

A write that changes a device's LUT sends `NOTIFY fbnet_lut_changed, '<device id>'` inside its transaction
(`storage.postgres`): PostgreSQL delivers it to every listener when, and only if, it commits. Each server
process keeps one listener connection (a daemon thread) that drops the device's cached version on receipt.

Freshness:
- a write in this process invalidates right after its commit, before its response is sent;
- a write in another replica: the cache is consulted only while the listener is idle with nothing unread - its
  socket is checked for input on every lookup (a poll, about a microsecond), and while it reads and hands over
  notifications every lookup goes to the database. So once the notification has reached this process, no 304 is
  served from the cache. What remains is PostgreSQL's own delivery: after the writer's COMMIT returns, the
  listening backend still has to send the notification (well under a millisecond on one host; longer if the
  database host is starved of CPU). A conditional GET that reaches this replica inside that gap is answered as if
  it had arrived just before the commit.
- the listener vouches for itself every `HEARTBEAT_S` with a query on its connection, and hands over every
  notification received up to then; when it has not done so for `LIVENESS_S` (connection lost or hung), the cache
  serves nothing and every request reads the database, until it has reconnected and re-listened (which empties
  the cache: notifications sent while it was away are lost).
"""

from __future__ import annotations

import logging
import select
import threading
import time
from typing import Any

from psycopg import Connection
from sqlalchemy import Engine

from profiler_server.database import Database
from profiler_server.services import lut
from profiler_server.services.lut import LutVersion
from profiler_server.services.lut_version_cache import LutVersionCache

LUT_CHANGED_CHANNEL = "fbnet_lut_changed"
LISTENER_NAME = "fbnet-lut-version-listener"
HEARTBEAT_S = 1.0
LIVENESS_S = 3.0
RECONNECT_S = 1.0

log = logging.getLogger(__name__)


class PostgresLutVersions:
    def __init__(self, engine: Engine, database: Database) -> None:
        self._engine = engine
        self._database = database
        self._cache = LutVersionCache()
        self._stopping = threading.Event()
        self._start_lock = threading.Lock()
        # Started on first use: an app may never serve a request.
        self._listener: threading.Thread | None = None
        # The listener's socket while it waits with every notification handed over; None while it reads.
        self._quiet_fd: int | None = None
        self._failures_in_a_row = 0

    def local(self, device_name: str) -> LutVersion | None:
        self._ensure_listening()
        fd = self._quiet_fd
        # While a notification may be on its way to the cache, the database answers.
        if fd is None or _has_input(fd, 0.0):
            return None
        return self._cache.get(device_name)

    async def current(self, device_name: str) -> LutVersion:
        cached = self.local(device_name)
        if cached is not None:
            return cached
        epoch = self._cache.epoch()
        version = await self._database.connection(lambda conn: lut.lut_version(conn, device_name))
        self._cache.put(version, epoch)
        return version

    def invalidate(self, device_id: int) -> None:
        self._cache.invalidate(device_id)

    def close(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(timeout=HEARTBEAT_S + 5)
        self._cache.reset()

    def _ensure_listening(self) -> None:
        if self._listener is not None:
            return
        with self._start_lock:
            if self._listener is None and not self._stopping.is_set():
                self._listener = threading.Thread(target=self._listen_forever, name="lut-version-listener",
                                                  daemon=True)  # fmt: skip
                self._listener.start()

    def _listen_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except Exception as exc:  # any failure of the connection: serve nothing from the cache, reconnect
                self._failures_in_a_row += 1
                # Once per outage, not once a second (e.g. behind a pooler that does not pass LISTEN through).
                level = logging.WARNING if self._failures_in_a_row == 1 else logging.DEBUG
                log.log(
                    level, "LUT version listener: no database connection (%s); 304s read the database", exc
                )
            self._cache.reset()
            self._stopping.wait(RECONNECT_S)

    def _listen(self) -> None:
        raw = self._engine.raw_connection()
        conn: Connection[Any] = raw.driver_connection  # type: ignore[assignment]
        raw.detach()  # a connection of its own for as long as it lives, never handed back to the pool
        try:
            conn.autocommit = True
            conn.execute(f"SET application_name = '{LISTENER_NAME}'")  # for operators in pg_stat_activity
            conn.execute(f"LISTEN {LUT_CHANGED_CHANNEL}")
            self._cache.reset()  # versions cached before LISTEN may have missed a notification
            self._failures_in_a_row = 0
            next_heartbeat_s = 0.0
            while not self._stopping.is_set():
                if time.monotonic() >= next_heartbeat_s:
                    vouched_at_s = time.monotonic()
                    conn.execute("SELECT 1")  # the connection is alive now
                    self._drain(conn)  # notifications read along with that answer
                    self._cache.live_until(vouched_at_s + LIVENESS_S)
                    next_heartbeat_s = vouched_at_s + HEARTBEAT_S
                self._quiet_fd = conn.fileno()
                arrived = _has_input(self._quiet_fd, max(0.0, next_heartbeat_s - time.monotonic()))
                self._quiet_fd = None
                if arrived:
                    self._drain(conn)
        finally:
            self._quiet_fd = None
            self._cache.reset()  # before the socket closes: its descriptor may be reused at once
            conn.close()

    def _drain(self, conn: Connection[Any]) -> None:
        """Hand over the notifications already received or readable now, without waiting."""
        for note in conn.notifies(timeout=0.0):
            if note.payload.isdigit():
                self._cache.invalidate(int(note.payload))
            else:  # not ours to interpret: assume every device changed
                self._cache.reset()


def _has_input(fd: int, timeout_s: float) -> bool:
    """Whether the socket has unread input (or an error/hang-up), waiting up to `timeout_s`."""
    poller = select.poll()  # one per call: a poll object must not be polled from two threads at once
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(timeout_s * 1000.0))
