"""Run the Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config

from db.session import normalise_database_url


def alembic_config(database_url: str, blob_dir: Path | None = None) -> Config:
    """`blob_dir`: where the migrations that move op models put their files (default: profiler_server.blobs's)."""
    config = Config()
    config.attributes["blob_dir"] = blob_dir
    config.set_main_option("script_location", str(resources.files("db") / "migrations"))
    # ConfigParser interpolation would choke on a '%' in a password.
    config.set_main_option("sqlalchemy.url", normalise_database_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head", blob_dir: Path | None = None) -> None:
    """Bring the database at `database_url` to `revision` (default: the latest)."""
    command.upgrade(alembic_config(database_url, blob_dir), revision)


def make_revision(database_url: str, message: str) -> None:
    """Autogenerate a new revision from the models (for developers; review the file it writes)."""
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
