"""Per-token rate limits: one runaway agent (a lease loop without a pause, a retry storm, a flood of huge posts)
cannot take the service from the others.

Each bearer token but the admin's has a token bucket: a request costs 1, plus 1 per MiB of body as it is read
(whatever Content-Length says, chunked or not); the bucket holds `burst` and refills at `rate_per_s`. Requests
whose caller is not known without the database (no token, a token never verified) also draw on their address's
bucket. An empty bucket answers 429 with `Retry-After` before the body is read or the database touched; the
body's chunks may overdraw it by one chunk (the debt delays the caller's next request), and a body that reaches
an indebted bucket is cut off with 429. The agent's client treats 429 like 503 (keep the results, back off,
retry).
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
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from profiler_server.errors import TooManyRequests

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
        return self._charge(key, cost, take=True)

    def wait_s(self, key: str, cost: float = 1.0) -> float:
        """What `take` would answer, taking nothing."""
        return self._charge(key, cost, take=False)

    def overdraw(self, key: str, cost: float) -> float:
        """Charge `cost` whenever the bucket is not in debt, even beyond its level; else the seconds until it is
        out of debt. A body is charged as it arrives, after its request's own 1: with a burst of 1 a plain
        `take` could never admit the first byte of any body, however long the caller waited."""

        def charge(level: float) -> tuple[float, float]:
            return (level - cost, 0.0) if level >= 0.0 else (level, -level / self.rate_per_s)

        return self._settle(key, charge)

    def _charge(self, key: str, cost: float, take: bool) -> float:
        cost = min(cost, self.burst)  # a request bigger than the bucket waits for a full one, not forever

        def charge(level: float) -> tuple[float, float]:
            if level >= cost:
                return (level - cost if take else level), 0.0
            return level, (cost - level) / self.rate_per_s

        return self._settle(key, charge)

    def _settle(self, key: str, charge: Callable[[float], tuple[float, float]]) -> float:
        """Refill `key`'s bucket to now, apply `charge` (level -> new level, wait in s), keep it; the wait."""
        now = self._clock()
        with self._lock:
            level, updated = self._buckets.pop(key, (self.burst, now))
            level, wait = charge(min(self.burst, level + (now - updated) * self.rate_per_s))
            self._buckets[key] = (level, now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        return wait


class RateLimitMiddleware:
    """Charges each request to its buckets before the app sees it, and each MiB of body as the app reads it.

    - A bearer token other than the admin's: its own bucket, 1 per request plus 1 per MiB read.
    - The client address's bucket (`anonymous_*` rates): 1 per request without a token, and 1 per request refused
      401 (no token, or an unknown one); a request with a token this process has never verified (which
      costs a database lookup) is refused 429 while that bucket is empty. So neither tokenless floods nor
      invented tokens load the server, and verified tokens never draw on it. Behind a reverse proxy every client
      shares the proxy's address.
    """

    def __init__(
        self,
        app: ASGIApp,
        rate_per_s: float,
        burst: float,
        anonymous_rate_per_s: float,
        anonymous_burst: float,
        exempt_token: str | None,
        known_token: Callable[[Scope, str], bool],
    ) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate_per_s, burst) if rate_per_s > 0 else None
        self.anonymous = (
            TokenBuckets(anonymous_rate_per_s, anonymous_burst) if anonymous_rate_per_s > 0 else None
        )
        self._exempt = _digest(exempt_token) if exempt_token else None
        self._known_token = known_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.buckets is None and self.anonymous is None):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        token = token.strip()
        digest = _digest(token) if scheme.lower() == "bearer" and token else None
        if digest is not None and digest == self._exempt:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if self.anonymous is not None:
            if digest is None:
                wait = self.anonymous.take(address)
            else:
                wait = 0.0 if self._known_token(scope, token) else self.anonymous.wait_s(address)
            if wait > 0:
                await _too_many(send, _refusal(wait, self.anonymous, "address without a verified token"))
                return
        if self.buckets is not None and digest is not None:
            wait = self.buckets.take(digest)
            if wait > 0:
                await _too_many(send, _refusal(wait, self.buckets, "token"))
                return
        # The body costs what is actually read (chunked or not), charged to the token, else to the address.
        buckets, key = (self.buckets, digest) if digest is not None else (self.anonymous, address)
        await self.app(
            scope, _charging(receive, buckets, key), self._counting_refusals(send, address, digest)
        )

    def _counting_refusals(self, send: Send, address: str, digest: str | None) -> Send:
        anonymous = self.anonymous
        if anonymous is None or digest is None:  # a tokenless request was charged up front
            return send

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                anonymous.take(address)
            await send(message)

        return send_counted


def _charging(receive: Receive, buckets: TokenBuckets | None, key: str | None) -> Receive:
    if buckets is None or key is None:
        return receive

    async def receive_charged() -> Message:
        message = await receive()
        size = len(message.get("body", b"")) if message["type"] == "http.request" else 0
        if size:
            wait = buckets.overdraw(key, size / MIB)
            if wait > 0:
                refusal = _refusal(wait, buckets, "token or address")
                raise TooManyRequests(refusal.detail, refusal.retry_after_s)
        return message

    return receive_charged


@dataclass(frozen=True, slots=True)
class _Refusal:
    detail: str
    retry_after_s: int


def _refusal(wait_s: float, buckets: TokenBuckets, per: str) -> _Refusal:
    detail = (
        f"Authorization: rate limit of {buckets.rate_per_s:g} requests/s per {per} (burst {buckets.burst:g}; "
        f"a MiB of body costs one request) reached; retry in {wait_s:.1f} s"
    )
    return _Refusal(detail, max(1, math.ceil(wait_s)))


def _digest(token: str) -> str:
    # Keyed by a hash: the middleware keeps no token in memory in the clear.
    return hashlib.sha256(token.encode()).hexdigest()


async def _too_many(send: Send, refusal: _Refusal) -> None:
    payload = json.dumps({"detail": refusal.detail, "field": "Authorization"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"retry-after", str(refusal.retry_after_s).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
