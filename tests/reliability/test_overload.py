"""More requests at once than the server has database connections: each is served, or refused with 503 and
`Retry-After` while the work it waits for is still blocked - never a 500, never a request stuck behind another
request's connection or write lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
from sqlalchemy.engine import make_url

from tests.reliability.helpers import PG_ADMIN_DSN, Collector, wait_for
from tests.server.helpers import Setup

BURST = 100


def _status(response: httpx.Response) -> str:
    """'200', or '503+Retry-After' / '503' (without the header), or the status otherwise."""
    if response.status_code == 503:
        return "503+Retry-After" if response.headers.get("Retry-After") else "503"
    return str(response.status_code)


def test_a_burst_of_leases_and_reads_is_served_or_refused_with_503_never_a_500(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=BURST // 2)
    headers = {"Authorization": f"Bearer {s.device_token}"}
    start = threading.Barrier(BURST)
    leased = Collector()

    def one(i: int) -> str:
        with httpx.Client(base_url=live_server.url, headers=headers, timeout=120) as client:
            start.wait()
            if i % 2:
                response = client.get(f"/devices/{s.device_name}")
            else:
                response = client.post("/agent/lease", json={"max_tasks": 1})
                if response.status_code == 200:
                    leased.add("tasks", *(t["task_id"] for t in response.json()["tasks"]))
        return _status(response)

    with ThreadPoolExecutor(BURST) as pool:
        statuses = list(pool.map(one, range(BURST)))

    assert set(statuses) <= {"200", "503+Retry-After"}, sorted(statuses)
    tasks = leased.get("tasks")
    assert len(tasks) == len(set(tasks)), "a task was leased twice"


@contextmanager
def _device_row_locked(backend: str, database_url: str, device_name: str) -> Iterator[None]:
    """Block every write that touches the device, from outside the server: SQLite's write lock (the whole file),
    or PostgreSQL's row lock on the device (a lease updates the row last)."""
    if backend == "postgresql":
        import psycopg

        name = make_url(database_url).database
        with psycopg.connect(PG_ADMIN_DSN.replace("dbname=test", f"dbname={name}")) as conn:
            conn.execute("SELECT id FROM devices WHERE name = %s FOR UPDATE", [device_name])
            yield
            conn.rollback()
        return
    locker = sqlite3.connect(make_url(database_url).database, isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")
        yield
        locker.execute("ROLLBACK")
    finally:
        locker.close()


def test_requests_that_cannot_get_database_work_started_are_503_while_the_blocker_still_holds(
    backend, live_server_factory, unique_name
):
    # Two connections; a turn is waited for 0.5 s at most; a blocked write waits (SQLite: busy timeout) minutes.
    server = live_server_factory(
        backend, db_connections=2, db_queue_timeout_s=0.5, sqlite_busy_timeout_ms=300_000
    )
    s = Setup(server, unique_name, n_ops=10)
    headers = {"Authorization": f"Bearer {s.device_token}"}
    answers = Collector()

    def lease() -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=300) as client:
            answers.add("statuses", _status(client.post("/agent/lease", json={"max_tasks": 1})))

    with _device_row_locked(backend, server.database_url, s.device_name):
        threads = [threading.Thread(target=lease) for _ in range(10)]
        for thread in threads:
            thread.start()
        # SQLite: one lease waits for the lock, the others for the write turn; PostgreSQL: two leases hold the two
        # connections, blocked on the row. The rest are refused while the block still holds.
        blocked = 1 if backend == "sqlite" else 2
        wait_for(lambda: len(answers.get("statuses")) >= 10 - blocked, "the waiting leases to be refused")
        assert answers.get("statuses") == ["503+Retry-After"] * (10 - blocked)
    for thread in threads:
        thread.join()
    assert sorted(answers.get("statuses")) == ["200"] * blocked + ["503+Retry-After"] * (10 - blocked)
