"""The one way a request reaches the database: a bounded number of worker threads, each holding one pooled
connection for the whole of its work, and on SQLite one writer per process.

A request never holds a connection or a write lock while it waits for anything else: it first waits, on the event
loop, for its turn (SQLite's write turn, then one of `slots` worker threads, never more than the pool's
connections), then does all its database work - session, transaction, commit - in that one thread. A request that
does not get its turn within `queue_timeout_s` is answered 503 with `Retry-After` (`ServerBusy`): under a burst
the server sheds load quickly instead of stacking threads that wait for connections, or for SQLite's lock, until
every thread is taken and nothing can finish.

On SQLite, writers queue here, in process, for the database's single write lock: only one thread at a time waits
on `BEGIN IMMEDIATE` (for another process, e.g. a second server or a CLI, up to the busy timeout), and readers
never wait for writers (WAL). On PostgreSQL, writers may hold at most three quarters of the turns: a burst of
posts never leaves LUT reads without a connection. (Both are the storage's answers: `Storage.write_slots`,
`Storage.begin_write`.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_session_factory
from profiler_server.errors import ServerBusy

if TYPE_CHECKING:
    from profiler_server.storage import Storage

T = TypeVar("T")


class Database:
    def __init__(self, storage: Storage, slots: int, queue_timeout_s: float) -> None:
        self.storage = storage
        self.engine = storage.engine
        self.session_factory: sessionmaker[Session] = make_session_factory(storage.engine)
        self.slots = slots
        self.queue_timeout_s = queue_timeout_s
        self.write_slots = storage.write_slots(slots)
        # anyio primitives need the running event loop: made on first use.
        self._turns: anyio.Semaphore | None = None
        self._threads: anyio.CapacityLimiter | None = None
        self._write_turns: anyio.Semaphore | None = None

    async def read(self, work: Callable[[Session], T]) -> T:
        """`work(session)` in a worker thread; the session is closed (rolled back if uncommitted) afterwards."""
        return await self._run(lambda: self._in_session(work, begin=False), writes=False)

    async def write(self, work: Callable[[Session], T], *, begin: bool = True) -> T:
        """`work(session)` in a worker thread, its transaction begun as a writer (SQLite: `BEGIN IMMEDIATE`, after
        this process's earlier writers); `begin=False` leaves starting the transaction to `work`."""
        return await self._run(lambda: self._in_session(work, begin=begin), writes=True)

    async def connection(self, work: Callable[[Connection], T]) -> T:
        """`work(conn)` on an autocommit connection (single-statement reads), in a worker thread."""
        return await self._run(lambda: self._in_connection(work), writes=False)

    async def _run(self, call: Callable[[], T], writes: bool) -> T:
        turns, threads, write_turns = self._primitives()
        if writes:
            await self._wait(write_turns.acquire, "writing")
            try:
                return await self._in_thread(call, turns, threads)
            finally:
                write_turns.release()
        return await self._in_thread(call, turns, threads)

    async def _in_thread(
        self, call: Callable[[], T], turns: anyio.Semaphore, threads: anyio.CapacityLimiter
    ) -> T:
        await self._wait(turns.acquire, "a database connection")
        try:
            # Not abandoned on cancellation: a write that has started is finished (and committed) or rolled back.
            return await anyio.to_thread.run_sync(call, limiter=threads)
        finally:
            turns.release()

    async def _wait(self, acquire: Callable[[], Awaitable[None]], what: str) -> None:
        with anyio.move_on_after(self.queue_timeout_s) as scope:
            await acquire()
        if scope.cancelled_caught:
            raise ServerBusy(f"server busy: no turn for {what} within {self.queue_timeout_s:g} s")

    def _primitives(self) -> tuple[anyio.Semaphore, anyio.CapacityLimiter, anyio.Semaphore]:
        if self._turns is None or self._threads is None or self._write_turns is None:
            self._turns = anyio.Semaphore(self.slots)
            # Never contended (a thread is started only with a turn): keeps these threads apart from the default
            # pool's, which the framework uses for other work.
            self._threads = anyio.CapacityLimiter(self.slots)
            self._write_turns = anyio.Semaphore(self.write_slots)
        return self._turns, self._threads, self._write_turns

    def _in_session(self, work: Callable[[Session], T], begin: bool) -> T:
        with self.session_factory() as session:
            if begin:
                self.storage.begin_write(session)
            return work(session)

    def _in_connection(self, work: Callable[[Connection], T]) -> T:
        with self.storage.autocommit_connection() as conn:
            return work(conn)
