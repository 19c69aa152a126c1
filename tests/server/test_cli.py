"""The `profiler-server` CLI: refusing unsafe settings, migrating, and dev mode's token file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from fbnet_core import dev_tokens
from profiler_server.cli import app


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("PROFILER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PROFILER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_serve_without_tokens_refuses_with_one_line(clean_env):
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "PROFILER_ADMIN_TOKEN is required" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_serve_refuses_short_or_equal_tokens(clean_env, monkeypatch):
    monkeypatch.setenv("PROFILER_ADMIN_TOKEN", "short")
    monkeypatch.setenv("PROFILER_ENROLL_TOKEN", "e" * 20)
    assert "at least 16 characters" in CliRunner().invoke(app, ["serve"]).output
    monkeypatch.setenv("PROFILER_ADMIN_TOKEN", "e" * 20)
    assert "must differ" in CliRunner().invoke(app, ["serve"]).output


def test_migrate_creates_the_schema(clean_env):
    url = f"sqlite:///{clean_env / 'cli.sqlite3'}"
    result = CliRunner().invoke(app, ["migrate", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    import sqlite3

    with sqlite3.connect(clean_env / "cli.sqlite3") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"devices", "ops", "tasks", "measurements", "lut_entries", "onnx_models"} <= tables


def test_migrate_on_unreachable_database_is_a_one_line_error(clean_env):
    url = "postgresql://postgres:s3cret-password@127.0.0.1:1/nothing"
    result = CliRunner().invoke(app, ["migrate", "--database-url", url])
    assert result.exit_code == 2
    assert result.output.startswith("profiler-server: cannot migrate") and "Traceback" not in result.output
    assert "s3cret-password" not in result.output


def test_new_migration_refuses_a_database_behind_head_without_writing(clean_env):
    from pathlib import Path

    import db.migrations

    versions = Path(db.migrations.__file__).parent / "versions"
    before = set(versions.iterdir())
    result = CliRunner().invoke(
        app, ["new-migration", "x", "--database-url", f"sqlite:///{clean_env / 'empty.db'}"]
    )
    assert result.exit_code == 2 and "not up to date" in result.output
    assert set(versions.iterdir()) == before


def test_dev_tokens_round_trip_keyed_by_url(clean_env):
    assert dev_tokens.read_dev_tokens() is None
    dev_tokens.write_dev_tokens("http://127.0.0.1:9001/", "admin-one", "enroll-one")
    dev_tokens.write_dev_tokens("http://127.0.0.1:9002", "admin-two", "enroll-two")
    assert dev_tokens.read_dev_tokens("http://127.0.0.1:9001").admin_token == "admin-one"
    assert dev_tokens.read_dev_tokens().server_url == "http://127.0.0.1:9002"  # the latest
    assert stat.S_IMODE(dev_tokens.tokens_path().stat().st_mode) == 0o600


def test_serve_dev_generates_tokens_the_other_clis_can_read(clean_env):
    from profiler_server.local_server import free_port

    port = free_port()
    env = {**os.environ, "PROFILER_DATABASE_URL": f"sqlite:///{clean_env / 'dev.sqlite3'}"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "profiler_server.cli",
            "serve",
            "--dev",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=clean_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        tokens = dev_tokens.read_dev_tokens(url)
        assert tokens is not None
        assert stat.S_IMODE(dev_tokens.tokens_path().stat().st_mode) == 0o600
        devices = httpx.get(f"{url}/devices", headers={"Authorization": f"Bearer {tokens.admin_token}"})
        assert devices.status_code == 200 and devices.json() == {"data": [], "count": 0}
    finally:
        process.terminate()
        output = process.communicate(timeout=15)[0].decode()
    assert f"dev mode: tokens for {url} are in" in output


def test_ctrl_c_stops_the_server_quietly_with_exit_130(clean_env, tmp_path):
    from profiler_server.local_server import free_port
    from tests.cli_process import error_lines, interrupt_when, start

    port = free_port()
    env = {"PROFILER_DATABASE_URL": f"sqlite:///{tmp_path / 'ctrl-c.db'}", "PROFILER_ADMIN_TOKEN": "a" * 32,
           "PROFILER_ENROLL_TOKEN": "e" * 32, "PROFILER_BLOB_DIR": str(tmp_path / "blobs")}
    process = start("profiler-server", "serve", "--port", str(port), "--log-level", "info", env=env)
    _, stderr = interrupt_when(process, "Uvicorn running on")
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and error_lines(stderr)[-1] == "profiler-server: interrupted"
