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

from profiler_server.services.lut import LutVersion


class LutVersions(Protocol):
    def local(self, device_name: str) -> LutVersion | None:
        """The current version if it is known without a database round trip (safe on the event loop); None: the
        device is unknown, or `current` must ask the database."""

    async def current(self, device_name: str) -> LutVersion:
        """The current version (404 for an unknown device)."""

    def invalidate(self, device_id: int) -> None:
        """A write in this process changed the device's LUT and has committed."""

    def close(self) -> None: ...
