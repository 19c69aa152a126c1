"""A real profiler server on 127.0.0.1 as a child process, and private PostgreSQL databases for it: what the
tests, the benchmarks and anything else that exercises a whole server start it with.

`LiveServer(backend, database_url, log_dir, settings)` runs `profiler-server serve` (uvicorn) on a free port,
with fresh admin and enroll tokens and `PROFILER_<NAME>` overrides from `settings`; `.start()` waits until
`/healthz` answers. `PostgresDatabases` creates uniquely named databases on 127.0.0.1:5432 (trust auth) and drops
them all at the end. Standard library and httpx at import: the server itself runs in the child process.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PG_URL_TEMPLATE = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
SERVER_START_TIMEOUT_S = 60.0


class PostgresDatabases:
    """Creates uniquely named databases (`<prefix>_<pid>_<hex>_<n>`) and drops them all at the end."""

    def __init__(self, prefix: str = "fbnet_test") -> None:
        self.prefix = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
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
                # Replicas on one database share their log folder, and so this (never the checkout's default).
                "PROFILER_BLOB_DIR": str(self.log_path.parent / "blobs"),
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
