"""docker-compose.yml and the Dockerfile use only commands, options, ports and settings the code accepts.

There is no Docker engine here, so the files are checked against the code itself: every command line is parsed by
the real typer/click command (unknown options or bad values fail), every PROFILER_* variable must be a Settings
field or an option's envvar, and ports and service URLs must agree.
"""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import typer
import yaml

from profiler_server.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::(?P<op>[-?])(?P<arg>[^}]*))?\}")


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} -> default; ${VAR:?message} and ${VAR} (must be set) -> a stand-in value."""
    return COMPOSE_VARIABLE.sub(
        lambda m: m["arg"] if m["op"] == "-" else f"stand-in-{m['name'].lower()}-value", value
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _console_script(name: str) -> Any:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert name in scripts, f"{name} is not a console script in pyproject.toml"
    module_name, _, _function = scripts[name].partition(":")
    return typer.main.get_command(importlib.import_module(module_name).app)


def _parse(argv: list[str]) -> tuple[Any, Any]:
    """Parse a command line with the real CLI; returns the sub-command and its parsed context."""
    argv = [_interpolate(arg) for arg in argv]
    group = _console_script(argv[0])  # typer's (click-based) group; typer vendors its own click
    command = group.commands.get(argv[1])
    assert command is not None, f"{argv[0]} has no sub-command {argv[1]!r}"
    return command, command.make_context(argv[1], argv[2:])


def _service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _interpolate(str(v)) for k, v in env.items()}


def test_server_command_and_port(compose):
    server = compose["services"]["server"]
    _, context = _parse(server["command"])
    published, _, container = server["ports"][0].partition(":")
    assert int(container) == context.params["port"]
    assert context.params["host"] == "0.0.0.0"  # reachable from the other containers


def test_server_environment_names_are_settings_fields(compose):
    env = _service_env(compose["services"]["server"])
    fields = {f"PROFILER_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(name for name in env if name not in fields)
    assert unknown == [], f"not Settings fields: {unknown}"
    settings = Settings(**{name.removeprefix("PROFILER_").lower(): value for name, value in env.items()})
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert urlparse(settings.database_url).hostname == "postgres" and "postgres" in compose["services"]


def test_server_waits_for_a_healthy_database_with_a_volume(compose):
    postgres = compose["services"]["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    assert compose["services"]["server"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_agent_command_points_at_the_server_service(compose):
    agent = compose["services"]["agent"]
    command, context = _parse(agent["command"])
    server_url = urlparse(context.params["server"])
    assert server_url.hostname in compose["services"]
    _, server_context = _parse(compose["services"][server_url.hostname]["command"])
    assert server_url.port == server_context.params["port"]
    assert context.params["enroll_token"] and context.params["name"]
    accepted_env = {p.envvar for p in command.params if isinstance(p.envvar, str)}
    unknown = sorted(name for name in _service_env(agent) if name not in accepted_env)
    assert unknown == [], f"environment variables device-agent run does not read: {unknown}"
    assert agent["depends_on"]["server"]["condition"] == "service_healthy"


def test_dockerfile_installs_the_server_extra_and_runs_a_valid_command():
    dockerfile = (ROOT / "Dockerfile").read_text()
    extras = re.search(r'pip install "\.\[(?P<extras>[^\]]+)\]"', dockerfile)
    assert extras is not None, "the Dockerfile must pip install the project with extras"
    assert {"server", "agent"} <= {e.strip() for e in extras["extras"].split(",")}
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    _parse(json.loads(cmd.removeprefix("CMD ")))


def test_the_installed_package_ships_migrations_and_assets(tmp_path):
    """What the Dockerfile installs (a built wheel, not this checkout) must carry every non-Python file it needs."""
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("fbnet_core", "profiler_server", "db", "device_agents"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        str(path.relative_to(ROOT))
        for pattern in (
            "db/migrations/**/*.py",
            "db/migrations/*.mako",
            "profiler_server/**/*.html",
            "profiler_server/**/*.css",
            "profiler_server/**/*.svg",
        )  # fmt: skip
        for path in ROOT.glob(pattern)
        if "__pycache__" not in path.parts
    }
    assert any(name.startswith("db/migrations/versions/") for name in expected)
    assert sorted(expected - shipped) == []
