"""The `device-agent` command line."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Device agent (not yet implemented: issue 4).")


@app.command()
def info() -> None:
    """Not yet: the agent lands with issue 4."""
    typer.echo("device-agent: not yet implemented (issue 4)", err=True)
    raise typer.Exit(2)


def main() -> None:
    app()
