"""the server's receive time orders the LUT; result ids are unique per device

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# How 0001 named measurements' unique result_id: PostgreSQL's default name; SQLite's batch mode names the unnamed
# constraint it reflects with this convention.
_PG_RESULT_ID_UNIQUE = "measurements_result_id_key"
_SQLITE_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
_SQLITE_RESULT_ID_UNIQUE = "uq_measurements_result_id"


def upgrade() -> None:
    with op.batch_alter_table("lut_entries") as batch_op:
        batch_op.add_column(sa.Column("received_at", UTCDateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE lut_entries SET received_at = "
        "(SELECT received_at FROM measurements WHERE measurements.id = lut_entries.measurement_id)"
    )
    with op.batch_alter_table("lut_entries") as batch_op:
        batch_op.alter_column("received_at", existing_type=UTCDateTime(timezone=True), nullable=False)
        batch_op.drop_column("measured_at")

    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(_PG_RESULT_ID_UNIQUE, "measurements", type_="unique")
        op.create_unique_constraint(
            "uq_measurements_device_result_id", "measurements", ["device_id", "result_id"]
        )
    else:
        with op.batch_alter_table("measurements", naming_convention=_SQLITE_NAMING) as batch_op:
            batch_op.drop_constraint(_SQLITE_RESULT_ID_UNIQUE, type_="unique")
            batch_op.create_unique_constraint("uq_measurements_device_result_id", ["device_id", "result_id"])
    op.create_index("ix_measurements_result_id", "measurements", ["result_id"])


def downgrade() -> None:
    # Fails if two devices share a result_id: the old schema cannot hold that.
    op.drop_index("ix_measurements_result_id", "measurements")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("uq_measurements_device_result_id", "measurements", type_="unique")
        op.create_unique_constraint(_PG_RESULT_ID_UNIQUE, "measurements", ["result_id"])
    else:
        with op.batch_alter_table("measurements") as batch_op:
            batch_op.drop_constraint("uq_measurements_device_result_id", type_="unique")
            batch_op.create_unique_constraint(_SQLITE_RESULT_ID_UNIQUE, ["result_id"])

    with op.batch_alter_table("lut_entries") as batch_op:
        batch_op.add_column(sa.Column("measured_at", UTCDateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE lut_entries SET measured_at = "
        "(SELECT measured_at FROM measurements WHERE measurements.id = lut_entries.measurement_id)"
    )
    with op.batch_alter_table("lut_entries") as batch_op:
        batch_op.alter_column("measured_at", existing_type=UTCDateTime(timezone=True), nullable=False)
        batch_op.drop_column("received_at")
