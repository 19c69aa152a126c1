"""A per-process cache of devices' LUT versions that is only trusted while its invalidations are known to arrive.

Three rules keep it from ever answering with a version older than the database's:
- an entry is dropped on every invalidation of its device (a write committed in this process, or a notification
  from the database);
- a fill is kept only if no invalidation happened since it started reading (an `epoch` taken before the read),
  so a read that raced a write cannot re-insert the version the write replaced;
- nothing is served unless the invalidation source (the listener) vouched for itself within `live_until`; losing
  it empties the cache.
"""

from __future__ import annotations

import threading
import time

from profiler_server.services.lut import LutVersion

# Devices kept at most; past that the cache starts over (a deployment has a handful of devices).
MAX_DEVICES = 10_000


class LutVersionCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, LutVersion] = {}
        self._epoch = 0
        self._live_until_s = 0.0  # time.monotonic() up to which invalidations are known to arrive

    def get(self, device_name: str) -> LutVersion | None:
        if time.monotonic() >= self._live_until_s:
            return None
        return self._by_name.get(device_name)

    def epoch(self) -> int:
        """Take before reading a version from the database; pass to `put` with what was read."""
        return self._epoch

    def put(self, version: LutVersion, epoch: int) -> None:
        with self._lock:
            if epoch != self._epoch or time.monotonic() >= self._live_until_s:
                return
            if len(self._by_name) >= MAX_DEVICES:
                self._by_name.clear()
            self._by_name[version.device_name] = version

    def invalidate(self, device_id: int) -> None:
        with self._lock:
            self._epoch += 1
            # Few devices: a scan costs less than keeping a second index in step.
            for name in [n for n, v in self._by_name.items() if v.device_id == device_id]:
                del self._by_name[name]

    def live_until(self, deadline_s: float) -> None:
        """The invalidation source is connected and has delivered everything up to now; trust it until then."""
        self._live_until_s = deadline_s

    def reset(self) -> None:
        """The invalidation source is lost (or just connected): forget everything, serve nothing until vouched."""
        with self._lock:
            self._epoch += 1
            self._by_name.clear()
            self._live_until_s = 0.0
