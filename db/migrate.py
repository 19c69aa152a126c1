"""Run the Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config

from db.session import normalise_database_url

if TYPE_CHECKING:
    from profiler_server.blobs import BlobStore


def alembic_config(database_url: str, blobs: BlobStore | None = None) -> Config:
    """`blobs`: where the migrations that move op models put them (default: the directory next to a SQLite file,
    else ./profiler-blobs, as profiler_server.blobs.default_blob_dir says)."""
    config = Config()
    config.attributes["blobs"] = blobs
    config.set_main_option("script_location", str(resources.files("db") / "migrations"))
    # ConfigParser interpolation would choke on a '%' in a password.
    config.set_main_option("sqlalchemy.url", normalise_database_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head", blobs: BlobStore | None = None) -> None:
    """Bring the database at `database_url` to `revision` (default: the latest)."""
    command.upgrade(alembic_config(database_url, blobs), revision)


def make_revision(database_url: str, message: str) -> None:
    """Autogenerate a new revision from the models (for developers; review the file it writes)."""
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
