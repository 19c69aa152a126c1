"""SQLAlchemy 2 typed models: the schema of the latency LUT service.

Tables are created only by the Alembic migrations in `db/migrations` (see `db.migrate`); these classes describe
them for queries. Timestamps are aware UTC (`UTCDateTime`).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.types import UTCDateTime

KEY_MAX_CHARS = 200
SHA256_HEX_CHARS = 64


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class TaskStatus(enum.StrEnum):
    queued = "queued"
    leased = "leased"
    done = "done"
    failed = "failed"


# Statuses in which a task still occupies the (device, op) queue slot.
ACTIVE_TASK_STATUSES = (TaskStatus.queued, TaskStatus.leased)


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    platform: Mapped[str] = mapped_column(String(100))
    attributes: Mapped[dict[str, Any]]
    # sha256 of the device token; the token itself is shown once at registration and never stored.
    token_sha256: Mapped[str] = mapped_column(String(SHA256_HEX_CHARS), unique=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None]
    # Bumped whenever the device's LUT changes: the LUT's ETag, so a 304 costs one indexed read.
    lut_version: Mapped[int] = mapped_column(Integer, default=0)
    # What runs the ops (onnxruntime, executorch, litert, ...) and the model format it loads
    # (fbnet_core.model_formats): tasks are leased with the op's file in that format.
    runtime: Mapped[str] = mapped_column(String(100), default="onnxruntime")
    model_format: Mapped[str] = mapped_column(String(16), default="onnx")


class OnnxModel(Base):
    """A model file (ONNX, or an op compiled for another runtime: `op_artifacts`), content-addressed: stored once
    however many op keys share it. Its bytes are a file of the blob store (profiler_server/blobs.py), not a
    column. (The table kept its first name, from when every model was ONNX.)"""

    __tablename__ = "onnx_models"

    sha256: Mapped[str] = mapped_column(String(SHA256_HEX_CHARS), primary_key=True)
    size_bytes: Mapped[int]
    created_at: Mapped[datetime]
    # When `profiler-server gc` removed its file (the ops and their measurements stay); re-uploading restores it.
    removed_at: Mapped[datetime | None]


class Op(Base):
    __tablename__ = "ops"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_MAX_CHARS), unique=True)
    spec: Mapped[dict[str, Any]]
    onnx_sha256: Mapped[str] = mapped_column(ForeignKey("onnx_models.sha256"))
    created_at: Mapped[datetime]


class OpArtifact(Base):
    """An op's model in one format: one file per (op, format). The ONNX row is written with the op (its sha256 is
    `ops.onnx_sha256`, the op's identity); the other formats are compiled from the same spec and added later."""

    __tablename__ = "op_artifacts"

    op_id: Mapped[int] = mapped_column(ForeignKey("ops.id"), primary_key=True)
    model_format: Mapped[str] = mapped_column(String(16), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("onnx_models.sha256"))
    created_at: Mapped[datetime]


class Task(Base):
    """One request to measure one op on one device; leased to agents, with attempts counted."""

    __tablename__ = "tasks"
    __table_args__ = (
        # FIFO leasing per device scans this index.
        Index("ix_tasks_device_status_id", "device_id", "status", "id"),
        # At most one queued-or-leased task per (device, op): re-queueing is idempotent.
        Index(
            "uq_tasks_active_device_op",
            "device_id",
            "op_id",
            unique=True,
            sqlite_where=text("status IN ('queued', 'leased')"),
            postgresql_where=text("status IN ('queued', 'leased')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    op_id: Mapped[int] = mapped_column(ForeignKey("ops.id"))
    status: Mapped[TaskStatus] = mapped_column(
        Enum(TaskStatus, native_enum=False, length=16, validate_strings=True)
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    leased_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # result_id of the agent's failure report, so a retried report is recognised as a duplicate.
    failure_result_id: Mapped[str | None] = mapped_column(String(100))


class Measurement(Base):
    """Raw samples of one run of one op on one device, their statistics (computed at ingest) and provenance."""

    __tablename__ = "measurements"
    __table_args__ = (
        Index("ix_measurements_device_op", "device_id", "op_id"),
        # Made by the agent when it measured: unique per device, so a retried upload never stores a measurement
        # twice, and another device's ids never collide with this one's.
        UniqueConstraint("device_id", "result_id", name="uq_measurements_device_result_id"),
        Index("ix_measurements_result_id", "result_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[str] = mapped_column(String(100))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    op_id: Mapped[int] = mapped_column(ForeignKey("ops.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    # The raw samples in microseconds as little-endian float64 (`numpy.frombuffer(b, "<f8")`): JSON would cost
    # more than everything else in ingest (float formatting), and is 2-3x larger.
    samples_us_f64le: Mapped[bytes] = mapped_column(LargeBinary)
    n: Mapped[int]
    median_us: Mapped[float] = mapped_column(Float)
    p10_us: Mapped[float] = mapped_column(Float)
    p90_us: Mapped[float] = mapped_column(Float)
    mean_us: Mapped[float] = mapped_column(Float)
    std_us: Mapped[float] = mapped_column(Float)
    iqr_us: Mapped[float] = mapped_column(Float)
    min_us: Mapped[float] = mapped_column(Float)
    max_us: Mapped[float] = mapped_column(Float)
    cv: Mapped[float] = mapped_column(Float)
    unstable: Mapped[bool] = mapped_column(Boolean)
    # Provenance: the agent's full `runtime` object, plus the fields the LUT summarises, as columns.
    runtime: Mapped[dict[str, Any]]
    runtime_name: Mapped[str] = mapped_column(String(100))
    runtime_version: Mapped[str] = mapped_column(String(100))
    execution_provider: Mapped[str | None] = mapped_column(String(100))
    threads: Mapped[int | None]
    agent_version: Mapped[str | None] = mapped_column(String(100))
    # The agent's clock (its `finished_at`, else the receive time): provenance only, never used to order.
    measured_at: Mapped[datetime]
    # The server's clock when the request arrived: what orders a device's measurements of an op.
    received_at: Mapped[datetime]


class LutEntry(Base):
    """The measurement the LUT serves for (device, op): the one the server received last, maintained at ingest."""

    __tablename__ = "lut_entries"

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    op_id: Mapped[int] = mapped_column(ForeignKey("ops.id"), primary_key=True)
    measurement_id: Mapped[int] = mapped_column(ForeignKey("measurements.id"))
    received_at: Mapped[datetime]


# Registers the search-space and validation tables on Base.metadata (Alembic and the migration tests read it).
from db import models_validation  # noqa: E402, F401
