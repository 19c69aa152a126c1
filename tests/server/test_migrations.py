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
    failed = {f"replica {i} (exit {p.returncode})": output for i, (p, output) in enumerate(zip(replicas, outputs, strict=True))
              if p.returncode != 0}  # fmt: skip
    assert not failed, failed  # each failing replica's whole output: pytest would elide the middle of a list
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_upgrading_makes_each_existing_onnx_model_its_ops_onnx_format(fresh_database_url):
    """0005: every op's existing model becomes its file of format "onnx"; existing devices run onnxruntime."""
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from alembic import command

    from db.types import UTCDateTime

    config = alembic_config(fresh_database_url)
    command.downgrade(config, "0004")
    now = datetime(2026, 12, 4, tzinfo=UTC)

    def when() -> sa.ColumnClause:
        return sa.column("created_at", UTCDateTime(timezone=True))

    models = sa.table("onnx_models", sa.column("sha256"), sa.column("size_bytes"), when())
    ops = sa.table("ops", sa.column("key"), sa.column("spec", sa.JSON), sa.column("onnx_sha256"), when())
    devices = sa.table("devices", sa.column("name"), sa.column("platform"), sa.column("attributes", sa.JSON),
                       sa.column("token_sha256"), sa.column("lut_version"), when())  # fmt: skip
    engine = make_engine(fresh_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(models), [{"sha256": c * 64, "size_bytes": 10, "created_at": now} for c in "ab"])
            conn.execute(sa.insert(ops), [{"key": f"k{c}", "spec": {}, "onnx_sha256": c * 64, "created_at": now}
                                          for c in "ab"])  # fmt: skip
            conn.execute(sa.insert(devices), [{"name": "old", "platform": "linux", "attributes": {},
                                               "token_sha256": "f" * 64, "lut_version": 0, "created_at": now}])  # fmt: skip
        command.upgrade(config, "head")
        with engine.connect() as conn:
            artifacts = conn.execute(sa.text(
                "SELECT ops.key, op_artifacts.model_format, op_artifacts.sha256 FROM op_artifacts "
                "JOIN ops ON ops.id = op_artifacts.op_id ORDER BY ops.key"
            )).all()  # fmt: skip
            device = conn.execute(sa.text("SELECT runtime, model_format FROM devices WHERE name = 'old'")).one()
    finally:
        engine.dispose()
    assert [tuple(row) for row in artifacts] == [("ka", "onnx", "a" * 64), ("kb", "onnx", "b" * 64)]
    assert tuple(device) == ("onnxruntime", "onnx")
