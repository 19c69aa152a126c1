"""`dnas --help` and the server-only commands start without torch, matplotlib, scipy or numpy: the command modules
import them inside the commands that run networks or draw figures (bench/bench_cli_startup.py times it)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "matplotlib", "scipy", "numpy")


def test_importing_the_cli_loads_no_torch_matplotlib_or_scipy() -> None:
    script = (
        "import sys\n"
        "import search_client.commands.cli\n"
        f"print(','.join(name for name in {HEAVY!r} if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_help_of_every_command_loads_none_of_them() -> None:
    # Typer builds each command's help from its signature: a default or help text computed from a torch module
    # would import it here.
    script = (
        "import sys\n"
        "from typer.main import get_command\n"
        "from search_client.commands.cli import app\n"
        "import click\n"
        "group = get_command(app)\n"
        "def walk(command, path):\n"
        "    context = click.Context(command, info_name=' '.join(path))\n"
        "    print(command.get_help(context))\n"
        "    for name, sub in getattr(command, 'commands', {}).items():\n"
        "        walk(sub, [*path, name])\n"
        "walk(group, ['dnas'])\n"
        f"print('loaded:' + ','.join(name for name in {HEAVY!r} if name in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "Usage: dnas search" in result.stdout  # the walk reached the commands
    assert result.stderr.strip().splitlines()[-1] == "loaded:"
