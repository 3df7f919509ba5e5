"""Tests for the client-side rate limiters, on a fake clock (nothing here really sleeps)."""

from __future__ import annotations

import threading

import pytest

from cosell_hooks.ratelimit import (
    CompositeLimiter,
    LimiterRegistry,
    RollingWindowLimiter,
    TokenBucket,
)


class FakeClock:
    """A clock that only moves when someone sleeps on it (or a test advances it)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _call_times(limiter, clock: FakeClock, calls: int) -> list[float]:
    """Acquire ``calls`` times back to back and return the (relative) start time of each call."""
    start = clock.now
    times = []
    for _ in range(calls):
        limiter.acquire()
        times.append(round(clock.now - start, 6))
    return times


def _max_in_window(times: list[float], window: float) -> int:
    """The most calls inside any half-open window ``[t, t + window)``."""
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


class TestTokenBucket:
    @pytest.mark.parametrize(
        ("rate", "capacity", "initial", "calls", "expected"),
        [
            pytest.param(10, 1, None, 4, [0.0, 0.1, 0.2, 0.3], id="reads-evenly-spaced"),
            pytest.param(1, 1, 0, 3, [1.0, 2.0, 3.0], id="writes-start-empty"),
            pytest.param(1, 1, None, 3, [0.0, 1.0, 2.0], id="writes-start-full"),
            pytest.param(5, 3, None, 5, [0.0, 0.0, 0.0, 0.2, 0.4], id="burst-then-paced"),
        ],
    )
    def test_call_times(self, clock, rate, capacity, initial, calls, expected):
        bucket = TokenBucket(rate, capacity, initial_tokens=initial, clock=clock, sleep=clock.sleep)
        assert _call_times(bucket, clock, calls) == pytest.approx(expected)

    def test_refills_while_idle_up_to_capacity(self, clock):
        bucket = TokenBucket(2, 2, initial_tokens=0, clock=clock, sleep=clock.sleep)
        clock.advance(60)  # a long idle period banks at most `capacity` tokens
        assert _call_times(bucket, clock, 3) == pytest.approx([0.0, 0.0, 0.5])

    def test_empty_write_bucket_protects_task_boundary(self, clock):
        """Task A writes, task B's hook (a new bucket) is built at once: B's first write is >= 1 s later."""
        task_a = TokenBucket(1, 1, initial_tokens=0, clock=clock, sleep=clock.sleep)
        task_a.acquire()
        write_a = clock.now
        task_b = TokenBucket(1, 1, initial_tokens=0, clock=clock, sleep=clock.sleep)
        task_b.acquire()
        assert clock.now - write_a >= 1.0

    def test_acquire_returns_seconds_waited(self, clock):
        bucket = TokenBucket(4, 1, clock=clock, sleep=clock.sleep)
        assert bucket.acquire() == 0.0
        assert bucket.acquire() == pytest.approx(0.25)
        assert clock.sleeps == [pytest.approx(0.25)]

    def test_next_slot_does_not_book(self, clock):
        bucket = TokenBucket(1, 1, initial_tokens=0, clock=clock, sleep=clock.sleep)
        assert bucket.next_slot() == pytest.approx(clock.now + 1)
        assert bucket.next_slot() == pytest.approx(clock.now + 1)

    def test_multi_token_acquire(self, clock):
        bucket = TokenBucket(10, 5, initial_tokens=0, clock=clock, sleep=clock.sleep)
        assert bucket.acquire(5) == pytest.approx(0.5)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            pytest.param({"rate_per_s": 0}, "rate_per_s", id="zero-rate"),
            pytest.param({"rate_per_s": 1, "capacity": 0.5}, "capacity", id="small-capacity"),
            pytest.param({"rate_per_s": 1, "initial_tokens": 2}, "initial_tokens", id="too-many-tokens"),
        ],
    )
    def test_rejects_bad_config(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            TokenBucket(**kwargs)

    @pytest.mark.parametrize("n", [pytest.param(0, id="zero"), pytest.param(2, id="over-capacity")])
    def test_rejects_bad_n(self, clock, n):
        with pytest.raises(ValueError, match=r"n must be|capacity"):
            TokenBucket(1, 1, clock=clock, sleep=clock.sleep).acquire(n)

    def test_thread_safe_reservations(self):
        """Threads booking concurrently get distinct, evenly spaced slots (no double booking)."""
        frozen = FakeClock()
        bucket = TokenBucket(10, 1, initial_tokens=0, clock=frozen, sleep=lambda _s: None)
        slots: list[float] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(50):
                slot = bucket.reserve()
                with lock:
                    slots.append(slot)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        offsets = sorted(round(s - frozen.now, 6) for s in slots)
        assert offsets == pytest.approx([0.1 * (i + 1) for i in range(400)])


class TestRollingWindowLimiter:
    @pytest.mark.parametrize(
        ("max_calls", "window", "calls", "expected"),
        [
            pytest.param(3, 10, 7, [0, 0, 0, 10, 10, 10, 20], id="full-bursts-one-window-apart"),
            pytest.param(5, 1, 6, [0, 0, 0, 0, 0, 1], id="search-5-per-second"),
            pytest.param(1, 2, 3, [0, 2, 4], id="one-per-window"),
        ],
    )
    def test_call_times(self, clock, max_calls, window, calls, expected):
        limiter = RollingWindowLimiter(max_calls, window, clock=clock, sleep=clock.sleep)
        assert _call_times(limiter, clock, calls) == pytest.approx(expected)

    def test_never_exceeds_budget_in_any_window(self, clock):
        limiter = RollingWindowLimiter(100, 10, clock=clock, sleep=clock.sleep)
        times = []
        for i in range(450):
            clock.advance(0.013 * (i % 7))  # irregular work between calls
            limiter.acquire()
            times.append(clock.now)  # absolute times: relative ones would add float noise at the edges
        assert _max_in_window(times, 10) == 100

    def test_calls_spread_over_time_are_not_delayed(self, clock):
        limiter = RollingWindowLimiter(2, 1, clock=clock, sleep=clock.sleep)
        for _ in range(5):
            assert limiter.acquire() == 0.0
            clock.advance(0.6)
        assert clock.sleeps == []

    def test_multi_call_booking(self, clock):
        limiter = RollingWindowLimiter(4, 10, clock=clock, sleep=clock.sleep)
        limiter.acquire(3)
        assert limiter.acquire(2) == pytest.approx(10)

    @pytest.mark.parametrize(
        ("max_calls", "window"),
        [pytest.param(0, 1, id="no-calls"), pytest.param(1, 0, id="no-window")],
    )
    def test_rejects_bad_config(self, max_calls, window):
        with pytest.raises(ValueError, match="must be"):
            RollingWindowLimiter(max_calls, window)


class TestCompositeLimiter:
    def test_books_one_common_slot_in_every_part(self, clock):
        """Waiting on the burst window must not leave the search budget with an early, wrong start time."""
        burst = RollingWindowLimiter(3, 10, clock=clock, sleep=clock.sleep)
        search = RollingWindowLimiter(2, 1, clock=clock, sleep=clock.sleep)
        for _ in range(3):  # three plain calls use the whole burst window
            burst.acquire()
        composite = CompositeLimiter(search, burst, clock=clock, sleep=clock.sleep)
        assert composite.acquire() == pytest.approx(10)
        assert search.next_slot() == pytest.approx(clock.now)  # one search booked at t=10, one left
        # At t=10 the three early calls have left the burst window; search (2 per 1 s) binds again.
        assert _call_times(composite, clock, 2) == pytest.approx([0, 1])

    def test_search_limit_binds_when_burst_has_room(self, clock):
        burst = RollingWindowLimiter(100, 10, clock=clock, sleep=clock.sleep)
        search = RollingWindowLimiter(5, 1, clock=clock, sleep=clock.sleep)
        composite = CompositeLimiter(search, burst, clock=clock, sleep=clock.sleep)
        assert _call_times(composite, clock, 11) == pytest.approx([0] * 5 + [1] * 5 + [2])

    def test_mixed_limiter_kinds(self, clock):
        bucket = TokenBucket(2, 1, clock=clock, sleep=clock.sleep)
        window = RollingWindowLimiter(3, 10, clock=clock, sleep=clock.sleep)
        composite = CompositeLimiter(bucket, window, clock=clock, sleep=clock.sleep)
        assert _call_times(composite, clock, 4) == pytest.approx([0, 0.5, 1.0, 10])

    def test_needs_a_part(self):
        with pytest.raises(ValueError, match="at least one"):
            CompositeLimiter()


class TestLimiterRegistry:
    def test_same_key_same_limiter(self):
        reg = LimiterRegistry()
        first = reg.get_or_create(("hubspot", "a"), lambda: RollingWindowLimiter(1, 1))
        second = reg.get_or_create(("hubspot", "a"), lambda: RollingWindowLimiter(9, 9))
        other = reg.get_or_create(("hubspot", "b"), lambda: RollingWindowLimiter(1, 1))
        assert first is second
        assert other is not first

    def test_clear(self):
        reg = LimiterRegistry()
        first = reg.get_or_create("k", lambda: TokenBucket(1))
        reg.clear()
        assert reg.get_or_create("k", lambda: TokenBucket(1)) is not first
