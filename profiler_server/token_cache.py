"""Device tokens verified recently, so that a request does not look its token up in the database every time.

Keyed by the token's sha256 (the cache holds no token in the clear), positive answers only (an unknown token is
looked up every time, so a device registered a moment ago is recognised at once), for `ttl_s` seconds: a device
removed from the database by hand keeps working on this replica for at most that long (the API has no call that
revokes a token; one that did would have to drop the entry here, and on the other replicas).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from profiler_server.security import Principal

DEFAULT_TTL_S = 10.0
# Entries kept at most (least recently verified dropped first): bounds memory whatever callers send.
MAX_TOKENS = 10_000


class VerifiedTokens:
    def __init__(self, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[Principal, float]] = OrderedDict()  # digest -> (who, expires at)

    def get(self, token_digest: str) -> Principal | None:
        item = self._items.get(token_digest)
        if item is None or item[1] <= self._clock():
            return None
        return item[0]

    def seen(self, token_digest: str) -> bool:
        """Whether the token was verified once (expired or not, while it is among the `MAX_TOKENS` kept): the rate
        limit tells devices from invented tokens by it, never who may do what."""
        return token_digest in self._items

    def put(self, token_digest: str, principal: Principal) -> None:
        with self._lock:
            self._items.pop(token_digest, None)
            self._items[token_digest] = (principal, self._clock() + self._ttl_s)
            while len(self._items) > MAX_TOKENS:
                self._items.popitem(last=False)
