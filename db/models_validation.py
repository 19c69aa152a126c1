"""Tables for search spaces (coverage, heat maps) and LUT validation runs.

Kept apart from `db.models` (the LUT itself) but on the same `Base`: `db.models` imports this module at its end,
so every `Base.metadata` user (Alembic, the migration tests) sees these tables too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from db.models import KEY_MAX_CHARS, Base

NAME_MAX_CHARS = 100


class SearchSpace(Base):
    """A search space as the server sees it: per layer, the op key of each candidate (null = identity skip)."""

    __tablename__ = "search_spaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_CHARS), unique=True)
    candidates: Mapped[list[str]] = mapped_column(JSON)
    # [layer][candidate] -> op key or None; the candidates' order is `candidates`.
    layers: Mapped[list[list[str | None]]] = mapped_column(JSON)
    fixed_keys: Mapped[list[str]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SearchSpaceKey(Base):
    """The unique op keys a space needs, one row each, so coverage is a join rather than JSON parsing.

    A key, not a foreign key to `ops`: a space can be registered before its ops are uploaded.
    """

    __tablename__ = "search_space_keys"

    space_id: Mapped[int] = mapped_column(
        ForeignKey("search_spaces.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(KEY_MAX_CHARS), primary_key=True)


class ValidationRun(Base):
    """Whole networks measured end to end on a device against the LUT's prediction; summary computed at ingest."""

    __tablename__ = "validation_runs"
    __table_args__ = (Index("ix_validation_runs_device_id", "device_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    space: Mapped[str | None] = mapped_column(String(NAME_MAX_CHARS))
    label: Mapped[str] = mapped_column(String(200))
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # {"all": {...}, "fit": {...}, "holdout": {...}}: see fbnet_core.fidelity.summarise_by_split.
    summary: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class ValidationPoint(Base):
    __tablename__ = "validation_points"
    __table_args__ = (Index("ix_validation_points_run_id", "run_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("validation_runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(NAME_MAX_CHARS))
    key: Mapped[str] = mapped_column(String(KEY_MAX_CHARS))
    predicted_us: Mapped[float] = mapped_column(Float)
    measured_us: Mapped[float] = mapped_column(Float)
    split: Mapped[str | None] = mapped_column(String(16))
