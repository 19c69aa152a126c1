"""The three command lines (`profiler-server`, `device-agent`, `dnas`): help text on every option, every option
name whole at 80 columns, and the same names for the same things (--device, --server with PROFILER_URL, -o/--out).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.main import get_command

from device_agents.cli import app as agent_app
from profiler_server.cli import app as server_app
from search_client.commands.cli import app as dnas_app

APPS = {"profiler-server": server_app, "device-agent": agent_app, "dnas": dnas_app}


# Typer builds on its own copy of click: options are recognised by their kind, not by click's classes.
Command = Any


def is_option(param: Any) -> bool:
    return param.param_type_name == "option"


def commands(app: typer.Typer, name: str) -> Iterator[tuple[str, Command]]:
    def walk(command: Command, path: str) -> Iterator[tuple[str, Command]]:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for sub_name, sub in subcommands.items():
                yield from walk(sub, f"{path} {sub_name}")
        else:
            yield path, command

    yield from walk(get_command(app), name)


ALL = [pair for name, app in APPS.items() for pair in commands(app, name)]


@pytest.mark.parametrize(("path", "command"), ALL, ids=[path for path, _ in ALL])
def test_every_option_has_help_and_its_whole_name_at_80_columns(path: str, command: Command) -> None:
    options = [p for p in command.params if is_option(p) and p.name != "help"]
    assert options or path == "profiler-server new-migration"
    assert [o.opts for o in options if not o.help] == []
    context = command.context_class(command, info_name=path, terminal_width=80, max_content_width=80)
    text = command.get_help(context)
    assert max(len(line) for line in text.splitlines()) <= 80
    for option in options:
        for name in option.opts + option.secondary_opts:
            assert name in text, f"{path}: {name} cut from the help"


def _option(path: str, dest: str) -> Any:
    command = dict(ALL)[path]
    return next(p for p in command.params if is_option(p) and p.name == dest)


def test_the_same_names_for_the_same_things() -> None:
    for path in ("device-agent run", "device-agent upload"):
        assert _option(path, "name").opts == ["--device", "--name"]
        assert _option(path, "server").envvar == "PROFILER_URL"
    for path in ("dnas lut request", "dnas search", "dnas validate"):
        assert _option(path, "server").envvar == "PROFILER_URL"
    outputs = [("device-agent profile", "out"), ("dnas export-ops", "out"), ("dnas search", "out"),
               ("dnas validate", "out"), ("dnas train", "out"), ("dnas export", "output"), ("dnas lut pull", "output")]  # fmt: skip
    for path, dest in outputs:
        assert _option(path, dest).opts == ["-o", "--out", "--output"], path
