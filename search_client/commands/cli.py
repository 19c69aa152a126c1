"""The `dnas` command line: one Typer app; each area registers its commands from its own module."""

from __future__ import annotations

import typer

from fbnet_core.cli_boundary import run_cli

# Plain click help: it wraps long option names at any width instead of cutting them (rich's table does).
app = typer.Typer(
    no_args_is_help=True, add_completion=False, rich_markup_mode=None, help="FBNet DNAS search client."
)

# Each area adds one line here: `from search_client.commands import X; X.register(app)`.
from search_client.commands import space_cmds; space_cmds.register(app)  # noqa: E402, E702, I001
from search_client.commands import search_cmds; search_cmds.register(app)  # noqa: E402, E702, I001
from search_client.commands import lut_cmds; lut_cmds.register(app)  # noqa: E402, E702, I001
from search_client.commands import validate_cmds; validate_cmds.register(app)  # noqa: E402, E702, I001


def main() -> None:
    run_cli(app, "dnas")
