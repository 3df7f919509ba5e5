"""Partner Central request quotas as token buckets.

AWS Partner Central quotas (developer guide, "Quotas for the AWS Partner Central Selling API"; also
docs/api-rules.md): read operations 10 requests/s, write operations 1 request/s and 10,000 writes a day per
partner account; beyond them the service answers ``ThrottlingException``. ``time_scale`` multiplies refill
rates, bucket sizes and the daily window's clock so benchmarks stay short.
"""

from __future__ import annotations

import threading
import time

READ_PER_SECOND = 10.0
WRITE_PER_SECOND = 1.0
WRITES_PER_DAY = 10_000
DAY_SECONDS = 86_400.0


def is_read(operation: str) -> bool:
    """Get*, List* and Search* operations draw on the read quota; every other operation is a write."""
    return operation.startswith(("Get", "List", "Search"))


class TokenBucket:
    """A bucket of ``rate`` tokens a second holding at most ``capacity``; starts full.

    Args:
        rate: tokens added per second.
        capacity: maximum tokens (the burst).
    """

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        """Take one token if available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Quotas:
    """Per-account read/write buckets and the daily write budget."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.configure(enabled=True, time_scale=1.0)

    def configure(self, enabled: bool, time_scale: float) -> None:
        """Turn quotas on/off and rescale; buckets restart full."""
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        with self._lock:
            self.enabled = enabled
            self.time_scale = time_scale
            # Buckets hold one second's worth of tokens, so a caller pacing itself is never throttled.
            self.reads = TokenBucket(READ_PER_SECOND * time_scale, max(1.0, READ_PER_SECOND * time_scale))
            self.writes = TokenBucket(WRITE_PER_SECOND * time_scale, max(1.0, WRITE_PER_SECOND * time_scale))
            self.day_start = time.monotonic()
            self.day_writes = 0

    def settings(self) -> dict[str, object]:
        """Current configuration, for ``GET /_emulator/quotas``."""
        return {"enabled": self.enabled, "time_scale": self.time_scale}

    def admit(self, operation: str) -> str | None:
        """None if the call may proceed, else the reason it is throttled."""
        with self._lock:
            if not self.enabled:
                return None
            if is_read(operation):
                return None if self.reads.take() else "Rate exceeded for read operations (10 per second)"
            now = time.monotonic()
            if (now - self.day_start) * self.time_scale >= DAY_SECONDS:
                self.day_start, self.day_writes = now, 0
            if self.day_writes >= WRITES_PER_DAY:
                return "Daily quota exceeded for write operations (10,000 per day)"
            if not self.writes.take():
                return "Rate exceeded for write operations (1 per second)"
            self.day_writes += 1
            return None
