"""How often each API key may call the HTTP API: a token bucket per key name (`serve
--rate-limit` requests per second, up to `--rate-burst` at once after a quiet spell).

The buckets live in this process: replicas sharing a database each count on their own, so a key
may make the limit's worth of requests at every replica. One bucket per key name that has made a
request (a name is an API key the database holds, so there are as many as keys).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float
    """The clock's reading when `tokens` was counted."""


class RateLimiter:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        # Monotonic: a wall clock set back would stall every key, set forward refill them all.
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> int:
        """Take a request from `key`'s bucket: 0 if it was there, else how many whole seconds
        until one is (what `Retry-After` says; nothing is taken)."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / self.rate))
