"""The schema comes only from the Alembic migrations, and they match the models on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from db.migrate import alembic_config
from db.models import Base
from db.session import make_engine


def test_migrations_build_exactly_the_models(fresh_database_url):
    engine = make_engine(fresh_database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert diff == []
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def test_downgrade_to_base_and_upgrade_again(fresh_database_url):
    from alembic import command

    config = alembic_config(fresh_database_url)
    command.downgrade(config, "base")
    engine = make_engine(fresh_database_url)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        command.upgrade(config, "head")
        with engine.connect() as conn:
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_replicas_migrating_at_once(backend, _pg_databases, tmp_path):
    import subprocess
    import sys

    # An empty database: the replicas race to create every table.
    url = _pg_databases.create() if backend == "postgresql" else f"sqlite:///{tmp_path / 'replicas.sqlite3'}"
    command = [sys.executable, "-m", "profiler_server.cli", "migrate", "--database-url", url]
    replicas = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0].decode() for p in replicas]
    assert [p.returncode for p in replicas] == [0] * 4, outputs
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
