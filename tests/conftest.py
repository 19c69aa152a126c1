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

Kept free of torch and of the server's own imports at module level: every area's tests load this file.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PG_URL_TEMPLATE = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
BACKENDS = ("sqlite", "postgresql")
SERVER_START_TIMEOUT_S = 60.0


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


class PostgresDatabases:
    """Creates uniquely named databases for this test session and drops them all at the end."""

    def __init__(self) -> None:
        self.prefix = f"fbnet_test_{os.getpid()}_{secrets.token_hex(3)}"
        self.created: list[str] = []

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(sql)

    def create(self) -> str:
        name = f"{self.prefix}_{len(self.created)}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return PG_URL_TEMPLATE.format(name=name)

    def drop_all(self) -> None:
        for name in self.created:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A `profiler-server serve` process on 127.0.0.1; see the module docstring."""

    def __init__(
        self, backend: str, database_url: str, log_dir: Path, settings: dict[str, Any] | None = None
    ) -> None:
        self.backend = backend
        self.database_url = database_url
        self.admin_token = f"admin-{secrets.token_urlsafe(16)}"
        self.enroll_token = f"enroll-{secrets.token_urlsafe(16)}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = dict(settings or {})
        self.log_path = log_dir / f"server-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._clients: list[Any] = []

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PROFILER_DATABASE_URL": self.database_url,
                "PROFILER_ADMIN_TOKEN": self.admin_token,
                "PROFILER_ENROLL_TOKEN": self.enroll_token,
                "PROFILER_STATE_DIR": str(self.log_path.parent),
            }
        )
        env.update({f"PROFILER_{name.upper()}": str(value) for name, value in self.settings.items()})
        return env

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("server already running")
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "profiler_server.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],  # fmt: skip
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"server exited at start-up:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"server did not become healthy in {SERVER_START_TIMEOUT_S}s:\n{self.log_path.read_text()}"
        )

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL: no shutdown and no cleanup, as in a crash (tests/reliability)."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._process = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self, token: str | None = None) -> Any:
        from fbnet_core.client import ProfilerClient

        client = ProfilerClient(self.url, token)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self.stop()


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
