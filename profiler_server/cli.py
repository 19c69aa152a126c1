"""The `profiler-server` command line: `serve`, `migrate` and `gc`."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from fbnet_core import dev_tokens
from fbnet_core.cli_boundary import run_cli
from profiler_server.config import DatabaseSettings, Settings
from profiler_server.services.retention import DEFAULT_ONE_OFF_KINDS

# Plain click help, as device-agent and dnas: long option names wrap instead of being cut at 80 columns.
app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None, help="The latency LUT service.")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"profiler-server: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def _settings_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"invalid settings{f' ({where})' if where else ''}: {first['msg'].removeprefix('Value error, ')}"


def _display_url(database_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(database_url).render_as_string(hide_password=True)


def _migrate(settings: DatabaseSettings) -> None:
    from db.migrate import upgrade  # alembic is imported only when migrating

    database_url = settings.database_url
    try:
        upgrade(database_url, blobs=settings.blob_store())
    except SQLAlchemyError as exc:
        raise _fail(
            f"cannot migrate {_display_url(database_url)}: {str(exc.orig or exc).strip().splitlines()[0]}"
        ) from exc


def _dev_settings(host: str, port: int) -> Settings:
    """Dev mode: reuse or generate the tokens, and publish them for this project's other CLIs."""
    from profiler_server.security import new_token

    base = Settings(dev=True)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    known = dev_tokens.read_dev_tokens(url)
    admin = (
        base.admin_token.get_secret_value()
        if base.admin_token
        else (known.admin_token if known else new_token())
    )
    enroll = (
        base.enroll_token.get_secret_value()
        if base.enroll_token
        else (known.enroll_token if known else new_token())
    )
    path = dev_tokens.write_dev_tokens(url, admin, enroll)
    typer.echo(f"dev mode: tokens for {url} are in {path}")
    return Settings(dev=True, admin_token=admin, enroll_token=enroll)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    dev: Annotated[
        bool, typer.Option("--dev", help="Generate missing tokens and write them for the CLIs.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the server (applies migrations first unless PROFILER_MIGRATE_ON_START=false)."""
    import uvicorn

    from profiler_server.app import create_app

    try:
        settings = _dev_settings(host, port) if dev else Settings()
    except ValidationError as exc:
        raise _fail(_settings_error(exc)) from exc
    if settings.migrate_on_start:
        _migrate(settings)
    # uvicorn.Server rather than uvicorn.run, which swallows the Ctrl-C it re-raises after a graceful shutdown:
    # let it through, so the command exits 130 like the other two command lines.
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level=log_level, access_log=False)
    uvicorn.Server(config).run()


@app.command()
def migrate(
    database_url: Annotated[
        str | None, typer.Option(help="Overrides PROFILER_DATABASE_URL.", show_default=False)
    ] = None,
) -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    try:
        settings = DatabaseSettings()
        if database_url is not None:
            settings = settings.model_copy(update={"database_url": database_url})
    except ValidationError as exc:
        raise _fail(_settings_error(exc)) from exc
    _migrate(settings)
    typer.echo(f"database at {_display_url(settings.database_url)} is up to date")


@app.command()
def gc(
    kinds: Annotated[
        str,
        typer.Option(help="Comma-separated op spec kinds that are one-off (whole networks of a validation)."),
    ] = ",".join(DEFAULT_ONE_OFF_KINDS),
    older_than_days: Annotated[float, typer.Option(min=0, help="Keep one-off ops younger than this.")] = 7.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; remove nothing.")] = False,
) -> None:
    """Remove the model files of one-off ops past the retention period, and files no model names.

    Ops, measurements and LUT entries stay; a removed model is answered 410 until its op is uploaded again.
    """
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from db.session import make_engine
    from profiler_server.clock import utcnow
    from profiler_server.services.retention import collect

    try:
        settings = DatabaseSettings()
    except ValidationError as exc:
        raise _fail(_settings_error(exc)) from exc
    chosen = tuple(k.strip() for k in kinds.split(",") if k.strip())
    blobs = settings.blob_store()
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            report = collect(session, blobs, chosen, timedelta(days=older_than_days), utcnow(), dry_run)
    except SQLAlchemyError as exc:
        raise _fail(
            f"cannot collect in {_display_url(settings.database_url)}: {str(exc.orig or exc).splitlines()[0]}"
        ) from exc
    finally:
        engine.dispose()
    verb = "would remove" if dry_run else "removed"
    typer.echo(
        f"{verb} {report.models_removed} one-off model files ({report.model_bytes / 2**20:.1f} MiB) and "
        f"{report.orphans_removed} unreferenced files ({report.orphan_bytes / 2**20:.1f} MiB) "
        f"from {blobs.location}"
    )


@app.command("new-migration")
def new_migration(
    message: Annotated[str, typer.Argument(help="What the migration changes, e.g. 'add device groups'.")],
    database_url: Annotated[
        str | None, typer.Option(help="A database at the current head (default: PROFILER_DATABASE_URL).")
    ] = None,
) -> None:
    """For developers: autogenerate a migration from the models into db/migrations/versions (review it)."""
    from alembic.util import CommandError

    from db.migrate import make_revision

    try:
        url = database_url or DatabaseSettings().database_url
    except ValidationError as exc:
        raise _fail(_settings_error(exc)) from exc
    try:
        make_revision(url, message)
    except (SQLAlchemyError, CommandError) as exc:
        raise _fail(f"cannot autogenerate against {_display_url(url)}: {str(exc).splitlines()[0]}") from exc


def main() -> None:
    run_cli(app, "profiler-server")


if __name__ == "__main__":
    main()
