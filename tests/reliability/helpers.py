"""What the reliability tests share: reading the server's database directly, outages, real agent processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def measurements_by_task(database_url: str, device_name: str) -> dict[int | None, int]:
    """{task_id: how many measurements the database holds for it} for one device (None: offline results)."""
    from db.models import Device, Measurement
    from db.session import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Measurement.task_id, func.count())
                .join(Device, Device.id == Measurement.device_id)
                .where(Device.name == device_name)
                .group_by(Measurement.task_id)
            ).all()
    finally:
        engine.dispose()
    return {task_id: n for task_id, n in rows}


def stored_result_ids(database_url: str, device_name: str) -> set[str]:
    from db.models import Device, Measurement
    from db.session import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return set(
                conn.scalars(
                    select(Measurement.result_id)
                    .join(Device, Device.id == Measurement.device_id)
                    .where(Device.name == device_name)
                )
            )
    finally:
        engine.dispose()


@contextmanager
def database_unavailable(backend: str, database_url: str) -> Iterator[None]:
    """Make the server's own database unavailable inside the block (never the shared PostgreSQL cluster).

    PostgreSQL: the database refuses new connections and its open ones are terminated, as when it is restarted
    or a failover is under way. SQLite: another process holds the write lock, as a long backup or a stuck
    writer would; the server's writes wait out their busy timeout, its reads go on (WAL).
    """
    if backend == "postgresql":
        import psycopg

        name = make_url(database_url).database

        def allow(allowed: bool) -> None:
            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
                if not allowed:
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = %s AND pid <> pg_backend_pid()",
                        [name],
                    )

        allow(False)
        try:
            yield
        finally:
            allow(True)
        return
    locker = sqlite3.connect(make_url(database_url).database, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            locker.execute("ROLLBACK")
    finally:
        locker.close()


def agent_log(state: Path, name: str) -> Path:
    """Where `start_agent` writes the agent's stderr (its log), readable while it runs."""
    return state / f"agent-{name}.log"


def start_agent(server: Any, name: str, state: Path, *extra: str) -> subprocess.Popen[str]:
    """`device-agent run` as a real process against `server`; stdout piped, stderr to `agent_log(state, name)`."""
    env = {**os.environ, "PROFILER_STATE_DIR": str(state), "PROFILER_ENROLL_TOKEN": server.enroll_token}
    command = [sys.executable, "-m", "device_agents", "run", "--server", server.url, "--name", name]
    with agent_log(state, name).open("w") as log:
        return subprocess.Popen(
            [*command, "--idle-poll-s", "0.2", *extra], env=env, stdout=subprocess.PIPE, stderr=log, text=True
        )


def wait_for(
    condition: Callable[[], bool],
    what: str,
    process: subprocess.Popen[str] | None = None,
    timeout_s: float = 60.0,
) -> None:
    """Poll until `condition()` (failing at once if `process` exits); the timeout only bounds a hung test."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process is not None and process.poll() is not None:
            stdout, _ = process.communicate()
            raise AssertionError(f"the process exited ({process.returncode}) before {what}:\n{stdout}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout_s} s")
        time.sleep(0.05)


class Collector:
    """Thread-safe lists of what concurrent workers saw."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: dict[str, list[Any]] = {}

    def add(self, kind: str, *values: Any) -> None:
        with self._lock:
            self.items.setdefault(kind, []).extend(values)

    def get(self, kind: str) -> list[Any]:
        with self._lock:
            return list(self.items.get(kind, []))
