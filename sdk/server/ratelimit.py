"""A token bucket per API token: `rate` requests a second on average, bursts of up to
`burst`; past that, 429 with ``Retry-After`` (whole seconds until one request fits)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from actorflow.server.errors import ApiError


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Pure and in-process (one API server); the clock is injectable for tests."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> None:
        """Spend one request of `key`'s bucket, or refuse with 429."""
        now = self._clock()
        bucket = self._buckets.setdefault(key, _Bucket(float(self.burst), now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return
        wait = (1 - bucket.tokens) / self.rate
        raise ApiError(
            429,
            "rate_limited",
            f"over {self.rate:g} requests a second (bursts of {self.burst}): retry in {wait:.2f}s",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
