"""op models' bytes move from onnx_models.content to the blob store's files

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from db.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _store():  # noqa: ANN202 - profiler_server.blobs.BlobStore, imported here only (the server package)
    from profiler_server.blobs import DirectoryBlobStore, default_blob_dir

    configured = context.config.attributes.get("blobs")  # the server's store (db.migrate.alembic_config)
    if configured is not None:
        return configured
    url = context.config.get_main_option("sqlalchemy.url") or ""
    return DirectoryBlobStore(default_blob_dir(url.replace("%%", "%")))


def upgrade() -> None:
    store = _store()
    conn = op.get_bind()
    # One row at a time: a database that held whole networks may not fit in memory.
    shas = [row[0] for row in conn.execute(sa.text("SELECT sha256 FROM onnx_models"))]
    for sha256 in shas:
        content = conn.execute(
            sa.text("SELECT content FROM onnx_models WHERE sha256 = :s"), {"s": sha256}
        ).scalar()
        store.put(sha256, bytes(content))
    with op.batch_alter_table("onnx_models") as batch_op:
        batch_op.add_column(sa.Column("removed_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_column("content")


def downgrade() -> None:
    store = _store()
    with op.batch_alter_table("onnx_models") as batch_op:
        batch_op.add_column(sa.Column("content", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    for (sha256,) in conn.execute(sa.text("SELECT sha256 FROM onnx_models WHERE removed_at IS NULL")).all():
        conn.execute(
            sa.text("UPDATE onnx_models SET content = :c WHERE sha256 = :s"),
            {"c": store.get(sha256), "s": sha256},
        )
    # Models that gc removed have no bytes left: the old schema cannot hold them without.
    conn.execute(
        sa.text(
            "DELETE FROM onnx_models WHERE removed_at IS NOT NULL AND sha256 NOT IN (SELECT onnx_sha256 FROM ops)"
        )
    )
    with op.batch_alter_table("onnx_models") as batch_op:
        batch_op.alter_column("content", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("removed_at")
