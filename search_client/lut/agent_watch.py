"""Noticing, while waiting for a LUT, that no agent is polling for the device (so nothing will ever be measured).

The server stamps a device's `last_seen_at` each time its agent leases or posts. The watch compares successive
values rather than the stamp with this machine's clock, so a skewed clock on either side cannot raise or hide
the warning: a stamp that has not moved for `after_s` seconds of waiting means no agent has polled meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fbnet_core.client import ProfilerClient

# An idle agent polls every few seconds (device-agent run --idle-poll-s, 5 by default) and a busy one posts its
# results at least every 10 s: half a minute without either is no agent at all.
DEFAULT_SILENCE_S = 30.0


class AgentWatch:
    def __init__(
        self,
        client: ProfilerClient,
        device: str,
        after_s: float = DEFAULT_SILENCE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._device = device
        self._after_s = after_s
        self._clock = clock
        self._last_seen: str | None = client.get_device(device).last_seen_at
        self._done = -1
        self._since = clock()
        self._reported = False

    def silent_for_s(self, done: int) -> float | None:
        """Seconds without a sign of an agent, once they pass `after_s` (each silence is reported once); None
        while an agent polls or entries keep arriving (`done`: entries measured so far)."""
        last_seen = self._client.get_device(self._device).last_seen_at
        now = self._clock()
        if last_seen != self._last_seen or done != self._done:
            self._last_seen, self._done, self._since, self._reported = last_seen, done, now, False
            return None
        if self._reported or now - self._since < self._after_s:
            return None
        self._reported = True
        return now - self._since
