"""Per-token rate limits: one runaway agent (a lease loop without a pause, a retry storm, a flood of huge posts)
cannot take the service from the others.

Each bearer token but the admin's has a token bucket: a request costs 1 plus 1 per MiB of declared body, the
bucket holds `burst` and refills at `rate_per_s`. An empty bucket answers 429 with `Retry-After` before the body
is read or the database touched; the agent's client treats 429 like 503 (keep the results, back off, retry).
The admin token is exempt (the operator's own tools). Buckets live in this process: with N replicas a token may
use N times the rate. See docs/reliability.md for the defaults and why.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

MIB = 1024 * 1024
# Buckets kept at most (least recently used dropped first): bounds memory whatever tokens callers invent.
MAX_BUCKETS = 10_000


class TokenBuckets:
    """`take(key, cost)` -> 0.0 when allowed, else the seconds until `cost` would be available."""

    def __init__(self, rate_per_s: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (level, updated at)

    def take(self, key: str, cost: float = 1.0) -> float:
        now = self._clock()
        with self._lock:
            level, updated = self._buckets.pop(key, (self.burst, now))
            level = min(self.burst, level + (now - updated) * self.rate_per_s)
            cost = min(cost, self.burst)  # a request bigger than the bucket waits for a full one, not forever
            if level >= cost:
                level -= cost
                wait = 0.0
            else:
                wait = (cost - level) / self.rate_per_s
            self._buckets[key] = (level, now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        return wait


class RateLimitMiddleware:
    def __init__(
        self, app: ASGIApp, rate_per_s: float, burst: float, exempt_token: str | None, max_body_bytes: int
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.buckets = TokenBuckets(rate_per_s, burst) if rate_per_s > 0 else None
        self._exempt = _digest(exempt_token) if exempt_token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.buckets is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        token = token.strip()
        key = _digest(token) if scheme.lower() == "bearer" and token else None
        if key is None or key == self._exempt:  # no token: the route answers 401 (or is public)
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length", b"0")
        size = int(declared) if declared.isdigit() else 0
        # A body over the limit is refused unread by the body limit next: it costs no more than a small one.
        cost = 1.0 + (size / MIB if size <= self.max_body_bytes else 0.0)
        wait = self.buckets.take(key, cost)
        if wait > 0:
            await _too_many(send, wait, self.buckets)
            return
        await self.app(scope, receive, send)


def _digest(token: str) -> str:
    # Keyed by a hash: the middleware keeps no token in memory in the clear.
    return hashlib.sha256(token.encode()).hexdigest()


async def _too_many(send: Send, wait_s: float, buckets: TokenBuckets) -> None:
    detail = (
        f"Authorization: rate limit of {buckets.rate_per_s:g} requests/s per token (burst {buckets.burst:g}) "
        f"reached; retry in {wait_s:.1f} s"
    )
    payload = json.dumps({"detail": detail, "field": "Authorization"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"retry-after", str(max(1, math.ceil(wait_s))).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
