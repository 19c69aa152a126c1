"""an op's model in several formats (op_artifacts: one file per op and format); a device's runtime and format

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "op_artifacts",
        sa.Column("op_id", sa.Integer(), sa.ForeignKey("ops.id"), primary_key=True),
        sa.Column("model_format", sa.String(16), primary_key=True),
        sa.Column("sha256", sa.String(64), sa.ForeignKey("onnx_models.sha256"), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
    )
    # Every existing op's model is its ONNX file.
    op.execute(
        "INSERT INTO op_artifacts (op_id, model_format, sha256, created_at) "
        "SELECT id, 'onnx', onnx_sha256, created_at FROM ops"
    )
    with op.batch_alter_table("devices") as batch_op:
        batch_op.add_column(sa.Column("runtime", sa.String(100), nullable=False, server_default="onnxruntime"))
        batch_op.add_column(sa.Column("model_format", sa.String(16), nullable=False, server_default="onnx"))


def downgrade() -> None:
    # The other formats' files stay in the blob store, unnamed: `profiler-server gc` removes them.
    conn = op.get_bind()
    other_formats = [
        row[0]
        for row in conn.execute(
            sa.text(
                "SELECT DISTINCT sha256 FROM op_artifacts WHERE model_format <> 'onnx' "
                "AND sha256 NOT IN (SELECT onnx_sha256 FROM ops)"
            )
        )
    ]
    op.drop_table("op_artifacts")
    delete = sa.text("DELETE FROM onnx_models WHERE sha256 = :s")
    for sha256 in other_formats:
        conn.execute(delete, {"s": sha256})
    with op.batch_alter_table("devices") as batch_op:
        batch_op.drop_column("model_format")
        batch_op.drop_column("runtime")
