"""Where a conditional GET of a LUT learns the device's current LUT version without a database round trip.

A 304 is only correct if the version it compares is current: a new measurement that landed before the request
(in this process, or in another replica on the same database) must turn the answer into a 200 with a new ETag.
- SQLite (one file, local): the version is read on every request through a connection of its own, straight
  through the driver (a few microseconds; a WAL reader never waits for writers). Nothing is cached.
- PostgreSQL (a round trip away): versions are cached in this process and dropped when they change: right after
  the commit of a write in this process, and for writes anywhere (other replicas included) by the NOTIFY that the
  write transaction sends on `LUT_CHANGED_CHANNEL`, which a listener connection of this process receives.
  See `lut_versions_postgres` for how the cache never outlives a lost notification.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Engine, String, Update, cast, func

from db.models import Device
from profiler_server.database import Database
from profiler_server.services.lut import LutVersion
from profiler_server.services.lut_versions_postgres import LUT_CHANGED_CHANNEL, PostgresLutVersions
from profiler_server.services.lut_versions_sqlite import SqliteLutVersions


class LutVersions(Protocol):
    def local(self, device_name: str) -> LutVersion | None:
        """The current version if it is known without a database round trip (safe on the event loop); None: the
        device is unknown, or `current` must ask the database."""

    async def current(self, device_name: str) -> LutVersion:
        """The current version (404 for an unknown device)."""

    def invalidate(self, device_id: int) -> None:
        """A write in this process changed the device's LUT and has committed."""

    def close(self) -> None: ...


def make_lut_versions(engine: Engine, database: Database) -> LutVersions:
    if engine.dialect.name == "postgresql":
        return PostgresLutVersions(engine, database)
    return SqliteLutVersions(engine)


def notifying(update_device: Update, dialect_name: str) -> Update:
    """The UPDATE of a device that bumps its `lut_version`, made to also tell every replica, when the transaction
    commits, that the device's LUT changed (PostgreSQL: NOTIFY in the same statement, no extra round trip; a
    rolled-back transaction sends nothing). SQLite's readers read the version every time: unchanged."""
    if dialect_name != "postgresql":
        return update_device
    return update_device.returning(func.pg_notify(LUT_CHANGED_CHANNEL, cast(Device.id, String)))
