"""Failed sign-ins rate-limited per client address: an in-process token bucket per address.

Each failed attempt takes a token; a client with none left gets 429 with Retry-After (before its
credential is even looked at). Buckets refill at a steady rate; full buckets are forgotten.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_TRACKED = 50_000


class FailureLimiter:
    def __init__(
        self,
        *,
        burst: int,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self.burst = float(burst)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._max = max_tracked
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, at)
        self._lock = threading.Lock()

    def _tokens(self, address: str, now: float) -> float:
        tokens, at = self._buckets.get(address, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it may try now."""
        with self._lock:
            tokens = self._tokens(address, self._clock())
        if tokens >= 1:
            return None
        return max(1, math.ceil((1 - tokens) / self.rate))

    def failed(self, address: str) -> None:
        """Count one failed attempt of ``address``."""
        with self._lock:
            now = self._clock()
            tokens = max(0.0, self._tokens(address, now) - 1)
            self._buckets[address] = (tokens, now)
            self._buckets.move_to_end(address)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)

    def forget(self, address: str) -> None:
        """A successful sign-in does not reset the bucket (that would let guesses interleave with a valid key)."""
        with self._lock:
            now = self._clock()
            if self._tokens(address, now) >= self.burst:
                self._buckets.pop(address, None)
