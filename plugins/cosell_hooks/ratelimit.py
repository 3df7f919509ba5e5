"""Client-side rate limiters that keep co-sell sync inside the APIs' published quotas.

Both APIs throttle per account (Partner Central: reads 10/s, writes 1/s; HubSpot: 100 requests per rolling
10 s for a free/starter private app, search 5/s; see ``docs/api-rules.md``). Retrying after a 429 works, but
every throttled call still counts against the budget and slows the whole run, so the hooks pace their calls
*before* sending them. The server-side retry (botocore retry modes, urllib3 ``Retry``) stays as the safety
net for what pacing cannot see (other clients of the same account, clock skew).

The limiters work by *reservation*: ``acquire`` books the earliest slot that respects the limit, releases
the lock, then sleeps until that slot. Callers are therefore served in arrival order, nobody busy-waits, and
a :class:`CompositeLimiter` can book the *same* slot in several limiters (e.g. the HubSpot burst window and
the search budget) so each limiter records the time the request is really sent.

It lives next to the hooks (its only users) but has no Airflow import, so it is unit-tested with a fake
clock without Airflow.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Protocol, TypeVar

__all__ = [
    "CompositeLimiter",
    "Limiter",
    "LimiterRegistry",
    "RollingWindowLimiter",
    "TokenBucket",
    "registry",
]

Clock = Callable[[], float]
Sleep = Callable[[float], None]

_L = TypeVar("_L", bound="Limiter")


class Limiter(Protocol):
    """What the hooks need from a limiter: book a slot, and (for composition) peek at one."""

    def next_slot(self, n: int = 1, not_before: float | None = None) -> float:
        """Return the earliest time (on the limiter's clock) at which ``n`` calls could start."""
        ...

    def reserve(self, n: int = 1, not_before: float | None = None) -> float:
        """Book ``n`` calls at the earliest allowed time not before ``not_before`` and return that time."""
        ...

    def acquire(self, n: int = 1) -> float:
        """Block until ``n`` calls may start; return the seconds waited."""
        ...


class _ReservingLimiter:
    """Shared plumbing: a lock, an injectable clock/sleep, and ``acquire`` built on ``reserve``."""

    def __init__(self, clock: Clock | None, sleep: Sleep | None) -> None:
        self._clock: Clock = clock or time.monotonic
        self._sleep: Sleep = sleep or time.sleep
        self._lock = threading.Lock()

    def reserve(self, n: int = 1, not_before: float | None = None) -> float:  # pragma: no cover - abstract
        """Book ``n`` calls; implemented by subclasses."""
        raise NotImplementedError

    def acquire(self, n: int = 1) -> float:
        """Block until ``n`` calls may start.

        Args:
            n: how many calls (tokens) to take.

        Returns:
            The number of seconds slept (0.0 when the call could start at once).
        """
        now = self._clock()
        wait = self.reserve(n, not_before=now) - now
        if wait > 0:
            self._sleep(wait)
            return wait
        return 0.0


class TokenBucket(_ReservingLimiter):
    """A thread-safe token bucket: ``rate_per_s`` tokens a second, at most ``capacity`` banked.

    ``capacity`` is the burst the bucket allows after an idle period. With ``capacity=1`` calls are evenly
    spaced ``1 / rate_per_s`` apart, which satisfies both token-bucket and rolling-window servers.

    ``initial_tokens`` sets the starting state (default: full). The Partner Central *write* bucket starts
    empty: the Airflow pool serialises writer tasks across the deployment, and the bucket paces writes
    within one task, but neither covers the boundary between two tasks. Task B's hook is created after
    task A's last write, so a bucket that starts empty (first write no sooner than ``1 / rate`` after the
    hook was built) can never put two writes inside one second across that boundary.

    Args:
        rate_per_s: tokens added per second (> 0).
        capacity: the most tokens the bucket holds (>= 1).
        initial_tokens: tokens at creation; ``None`` means ``capacity``.
        clock: monotonic clock in seconds (injectable for tests).
        sleep: sleep function (injectable for tests).

    Raises:
        ValueError: on a non-positive rate, a capacity below 1 or initial tokens outside ``[0, capacity]``.
    """

    def __init__(
        self,
        rate_per_s: float,
        capacity: float = 1.0,
        *,
        initial_tokens: float | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        tokens = capacity if initial_tokens is None else initial_tokens
        if not 0 <= tokens <= capacity:
            raise ValueError(f"initial_tokens must be within [0, {capacity}], got {initial_tokens!r}")
        super().__init__(clock, sleep)
        self.rate_per_s = float(rate_per_s)
        self.capacity = float(capacity)
        self._tokens = float(tokens)
        # Time at which ``_tokens`` was true. It may lie in the future once a slot has been booked ahead.
        self._updated = self._clock()

    def __repr__(self) -> str:
        return f"TokenBucket(rate_per_s={self.rate_per_s}, capacity={self.capacity})"

    def _plan(self, n: int, not_before: float | None) -> tuple[float, float]:
        """Return ``(slot, tokens_left_after)`` for ``n`` tokens, without changing state."""
        if n <= 0:
            raise ValueError(f"n must be >= 1, got {n!r}")
        if n > self.capacity:
            raise ValueError(f"cannot take {n} tokens from a bucket of capacity {self.capacity}")
        start = max(self._clock() if not_before is None else not_before, self._updated)
        available = min(self.capacity, self._tokens + (start - self._updated) * self.rate_per_s)
        if available >= n:
            return start, available - n
        return start + (n - available) / self.rate_per_s, 0.0

    def next_slot(self, n: int = 1, not_before: float | None = None) -> float:
        """Return the earliest time ``n`` tokens will be available (no booking).

        Args:
            n: number of tokens.
            not_before: earliest acceptable time; defaults to now.
        """
        with self._lock:
            return self._plan(n, not_before)[0]

    def reserve(self, n: int = 1, not_before: float | None = None) -> float:
        """Take ``n`` tokens at the earliest possible time not before ``not_before`` and return that time.

        Args:
            n: number of tokens.
            not_before: earliest acceptable time; defaults to now.
        """
        with self._lock:
            slot, left = self._plan(n, not_before)
            self._tokens, self._updated = left, slot
            return slot


class RollingWindowLimiter(_ReservingLimiter):
    """At most ``max_calls`` calls in any rolling window of ``window_s`` seconds (thread-safe).

    This is how HubSpot counts its burst limit ("100 requests per 10 seconds"): unlike a token bucket it
    never lets a full burst follow a full burst, so it is the right model when the server counts calls in
    a sliding window.

    Args:
        max_calls: calls allowed per window (>= 1).
        window_s: window length in seconds (> 0).
        clock: monotonic clock in seconds (injectable for tests).
        sleep: sleep function (injectable for tests).

    Raises:
        ValueError: on a non-positive window or fewer than one call.
    """

    def __init__(
        self, max_calls: int, window_s: float, *, clock: Clock | None = None, sleep: Sleep | None = None
    ) -> None:
        if max_calls < 1:
            raise ValueError(f"max_calls must be >= 1, got {max_calls!r}")
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        super().__init__(clock, sleep)
        self.max_calls = int(max_calls)
        self.window_s = float(window_s)
        # Start times of recent calls, oldest first (booked slots may lie in the future). Only the last
        # ``max_calls`` can ever constrain a new call, which bounds the memory.
        self._starts: deque[float] = deque(maxlen=self.max_calls)

    def __repr__(self) -> str:
        return f"RollingWindowLimiter(max_calls={self.max_calls}, window_s={self.window_s})"

    def _plan(self, n: int, not_before: float | None) -> float:
        if n <= 0:
            raise ValueError(f"n must be >= 1, got {n!r}")
        if n > self.max_calls:
            raise ValueError(f"cannot book {n} calls in a window of {self.max_calls}")
        now = self._clock()
        # Calls that started a full window ago no longer count anywhere.
        while self._starts and self._starts[0] + self.window_s <= now:
            self._starts.popleft()
        slot = now if not_before is None else max(now, not_before)
        if self._starts:
            # Slots are booked in order so the deque stays sorted.
            slot = max(slot, self._starts[-1])
        # The n calls fit once the (max_calls - n + 1)-th most recent start has left the window.
        k = self.max_calls - n + 1
        if len(self._starts) >= k:
            slot = max(slot, self._starts[-k] + self.window_s)
        return slot

    def next_slot(self, n: int = 1, not_before: float | None = None) -> float:
        """Return the earliest time ``n`` calls could start (no booking).

        Args:
            n: number of calls.
            not_before: earliest acceptable time; defaults to now.
        """
        with self._lock:
            return self._plan(n, not_before)

    def reserve(self, n: int = 1, not_before: float | None = None) -> float:
        """Book ``n`` calls at the earliest allowed time not before ``not_before`` and return it.

        Args:
            n: number of calls.
            not_before: earliest acceptable time; defaults to now.
        """
        with self._lock:
            slot = self._plan(n, not_before)
            self._starts.extend([slot] * n)
            return slot


class CompositeLimiter(_ReservingLimiter):
    """Several limiters that must *all* allow a call; the call starts at one slot booked in each.

    Acquiring the limiters one after the other would record an early start in the first limiter whenever a
    later one makes the caller wait, so the first limiter would under-count the real traffic. Instead the
    composite looks for the earliest time every limiter accepts and books that same time everywhere.

    All parts must share the composite's clock.

    Args:
        *limiters: the limiters to satisfy together (at least one).
        clock: clock shared with the parts (injectable for tests).
        sleep: sleep function (injectable for tests).
    """

    _MAX_ROUNDS = 100

    def __init__(self, *limiters: Limiter, clock: Clock | None = None, sleep: Sleep | None = None) -> None:
        if not limiters:
            raise ValueError("CompositeLimiter needs at least one limiter")
        super().__init__(clock, sleep)
        self.limiters: tuple[Limiter, ...] = limiters

    def __repr__(self) -> str:
        return f"CompositeLimiter{self.limiters!r}"

    def next_slot(self, n: int = 1, not_before: float | None = None) -> float:
        """Return the earliest time all parts accept ``n`` calls (no booking).

        Args:
            n: number of calls.
            not_before: earliest acceptable time; defaults to now.
        """
        slot = self._clock() if not_before is None else not_before
        # Each part's answer is >= its input and monotonic in it, so this reaches a fixed point quickly
        # (in practice in two rounds); the cap only guards against a misbehaving part.
        for _ in range(self._MAX_ROUNDS):
            latest = max(limiter.next_slot(n, slot) for limiter in self.limiters)
            if latest <= slot:
                break
            slot = latest
        return slot

    def reserve(self, n: int = 1, not_before: float | None = None) -> float:
        """Book ``n`` calls in every part at one common slot and return it.

        Args:
            n: number of calls.
            not_before: earliest acceptable time; defaults to now.
        """
        with self._lock:
            slot = self.next_slot(n, not_before)
            # Another thread using a part directly may have booked in between; then that part answers a
            # later slot and the call waits for the latest of them (conservative).
            return max(limiter.reserve(n, slot) for limiter in self.limiters)


class LimiterRegistry:
    """Process-wide limiters keyed by what the quota belongs to (connection and endpoint).

    Quotas are per account, not per hook object: two hooks for the same connection in one task must share
    one budget, or each would believe it has the full quota.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limiters: dict[Hashable, object] = {}

    def get_or_create(self, key: Hashable, factory: Callable[[], _L]) -> _L:
        """Return the limiter registered under ``key``, creating it with ``factory`` on first use.

        Args:
            key: identifies the quota, e.g. ``("hubspot", conn_id, base_url, "burst")``.
            factory: builds the limiter when none exists yet.
        """
        with self._lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = self._limiters[key] = factory()
            return limiter  # type: ignore[return-value]

    def clear(self) -> None:
        """Forget every limiter (tests use this to start from a clean state)."""
        with self._lock:
            self._limiters.clear()


#: The registry the hooks use.
registry = LimiterRegistry()
