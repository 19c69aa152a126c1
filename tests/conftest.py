"""Shared fixtures: real profiler servers on 127.0.0.1 over real, freshly migrated databases.

Databases: every test session creates its own PostgreSQL database on 127.0.0.1:5432 (named
`fbnet_test_<pid>_<random>`, dropped at the end) and its own SQLite files under pytest's tmp dirs, so concurrent
test runs never share a database. `--db sqlite`, `--db postgresql` or `--db sqlite,postgresql` (the default)
chooses the backends; PostgreSQL must then be up (`pg_isready -h 127.0.0.1`).

Fixtures
- `backend` (session, parametrised over the chosen backends): "sqlite" or "postgresql".
- `live_server` (session, one per backend): a `LiveServer` - a real `profiler-server serve` process (uvicorn)
  on a free port, migrations applied at start-up. Shared by the tests of a session, so tests must use unique
  device names and op keys (see `unique_name`). Attributes: `.url`, `.admin_token`, `.enroll_token`,
  `.database_url`, `.backend`; methods: `.stop()`, `.start()`, `.restart()`, `.kill()` (SIGKILL), `.pid`,
  `.client(token=None)` (a `fbnet_core.client.ProfilerClient`, closed at teardown).
- `live_server_factory` (function): `live_server_factory(backend="sqlite", **settings)` starts a private server on
  a fresh database with setting overrides, e.g. `live_server_factory(lease_seconds=1, max_attempts=2)` (names are
  `profiler_server.config.Settings` fields, passed as `PROFILER_<NAME>`). Use it to stop and restart a server
  (agent spooling) or for short leases; stopped at teardown.
- `LiveServer(backend, database_url, log_dir)` (class): a second replica on an existing server's database -
  copy `.admin_token` / `.enroll_token` from the first before `.start()`; `.close()` it yourself.
- `fresh_database_url` (function): a new, migrated, empty database of the session's `backend`.
- `unique_name` (function): `unique_name("dev")` -> "dev-3f9c2a1b", a name no other test uses.

Kept free of torch and of the server's dependencies at module level (`profiler_server.local_server` needs only
httpx): every area's tests load this file.
"""

from __future__ import annotations

import os

# Before anything imports torch or onnxruntime, and inherited by every child process the tests start (CLIs,
# agents, servers): idle OpenMP threads sleep instead of spinning, and torch and onnxruntime default to one
# intra-op thread. On a small machine shared with another test run, spinning threads of two processes steal each
# other's cores and small CPU steps slow down tens of times. A test that asks for more threads still gets them.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from profiler_server.local_server import LiveServer, PostgresDatabases

BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        default="sqlite,postgresql",
        help="comma-separated database backends for the server fixtures: sqlite, postgresql",
    )


def _chosen_backends(config: pytest.Config) -> list[str]:
    chosen = [b.strip() for b in config.getoption("--db").split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BACKENDS]
    if unknown or not chosen:
        raise pytest.UsageError(f"--db: unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", _chosen_backends(metafunc.config), scope="session")


@pytest.fixture(scope="session")
def _pg_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def _new_database(
    _pg_databases: PostgresDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], str]:
    """new_database(backend) -> URL of a new, migrated, empty database."""

    def new_database(backend: str) -> str:
        from db.migrate import upgrade

        if backend == "postgresql":
            url = _pg_databases.create()
        else:
            url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'profiler.sqlite3'}"
        upgrade(url)
        return url

    return new_database


@pytest.fixture(scope="session")
def live_server(
    backend: str, _new_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    server = LiveServer(backend, _new_database(backend), tmp_path_factory.mktemp("live-server"))
    server.start()
    yield server
    server.close()


@pytest.fixture
def live_server_factory(
    _new_database: Callable[[str], str], tmp_path: Path
) -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def start(backend: str = "sqlite", **settings: Any) -> LiveServer:
        server = LiveServer(backend, _new_database(backend), tmp_path, settings)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def fresh_database_url(backend: str, _new_database: Callable[[str], str]) -> str:
    return _new_database(backend)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    return make
