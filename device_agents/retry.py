"""Retrying calls to a server that is down or slow: exponential backoff with full jitter, no retry on 4xx.

Full jitter (a uniform delay in [0, cap]) keeps many agents that lost the same server from returning in
lockstep. The waiting is an injected function so a stop request (SIGTERM) can cut a wait short.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger("device_agents")

T = TypeVar("T")


class StopRequestedError(Exception):
    """The agent was asked to stop while waiting to retry."""


@dataclass(frozen=True)
class RetryPolicy:
    initial_s: float = 0.5
    max_delay_s: float = 30.0
    multiplier: float = 2.0
    max_attempts: int | None = None  # None: retry until stopped (an agent outlives a server restart)

    def delay_cap_s(self, attempt: int) -> float:
        return min(self.max_delay_s, self.initial_s * self.multiplier ** (attempt - 1))


def call_with_retry(
    call: Callable[[], T],
    is_retryable: Callable[[Exception], bool],
    policy: RetryPolicy,
    wait: Callable[[float], bool],
    what: str,
    rng: random.Random | None = None,
) -> T:
    """`call()` until it succeeds; `wait(seconds)` returns True when a stop was requested meanwhile."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as exc:
            if not is_retryable(exc) or (policy.max_attempts is not None and attempt >= policy.max_attempts):
                raise
            delay = rng.uniform(0, policy.delay_cap_s(attempt))
            log.warning("%s failed (%s); retry %d in %.1f s", what, exc, attempt, delay)
            if wait(delay):
                raise StopRequestedError(f"stopped while retrying {what}") from exc
