"""Quota arithmetic: the time floor quotas impose on a set of calls, and write-spacing statistics."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from itertools import pairwise

#: Published quotas at time_scale 1 (docs/api-rules.md, emulators/*/quotas|limits.py).
PC_READS_PER_S = 10.0
PC_WRITES_PER_S = 1.0
HS_REQUESTS_PER_10S = 100.0
HS_SEARCH_PER_S = 5.0


@dataclass(frozen=True)
class Budget:
    """One quota: ``rate`` calls per second sustained, ``burst`` calls available up front."""

    name: str
    rate: float
    burst: float


def budgets(time_scale: float) -> dict[str, Budget]:
    """The emulators' budgets at ``time_scale`` (rates and bursts both scale, as in the emulators).

    Partner Central buckets start full with one second's worth of tokens; HubSpot's rolling windows
    admit a full window's worth at once (100 per 10 s, search 5 per 1 s).
    """
    s = float(time_scale)
    return {
        "partner_central_reads": Budget(
            "partner_central_reads", PC_READS_PER_S * s, max(1.0, PC_READS_PER_S * s)
        ),
        "partner_central_writes": Budget(
            "partner_central_writes", PC_WRITES_PER_S * s, max(1.0, PC_WRITES_PER_S * s)
        ),
        "hubspot_requests": Budget(
            "hubspot_requests", HS_REQUESTS_PER_10S * s / 10.0, HS_REQUESTS_PER_10S * s
        ),
        "hubspot_search": Budget("hubspot_search", HS_SEARCH_PER_S * s, HS_SEARCH_PER_S * s),
    }


def floor_seconds(calls: dict[str, float], time_scale: float) -> tuple[float, str]:
    """The least wall time the quotas allow for ``calls``, and the binding quota.

    floor = max over quotas q of max(0, calls_q - burst_q) / rate_q: every quota must pass its calls,
    the first ``burst_q`` at once and the rest at ``rate_q``; the APIs are assumed to run fully in
    parallel, so the floor is a lower bound no implementation can beat.

    Args:
        calls: calls per budget name (see :func:`budgets`); HubSpot search calls count in both
            ``hubspot_search`` and ``hubspot_requests`` (pass them in both).
        time_scale: the emulators' time_scale.

    Returns:
        (seconds, name of the binding budget).
    """
    quotas = budgets(time_scale)
    best, which = 0.0, ""
    for name, n in calls.items():
        budget = quotas[name]
        seconds = max(0.0, float(n) - budget.burst) / budget.rate
        if seconds > best or not which:
            best, which = seconds, name
    return best, which


def max_in_window(stamps: list[float], window: float = 1.0) -> int:
    """The largest number of ``stamps`` inside any half-open window ``[t, t + window)``.

    Args:
        stamps: event times in seconds (any order).
        window: window length in seconds.

    Returns:
        0 for no events, else the maximum count (windows start at an event, which is where maxima are).
    """
    ordered = sorted(stamps)
    best = 0
    for i, start in enumerate(ordered):
        best = max(best, bisect_left(ordered, start + window) - i)
    return best


def min_gap(stamps: list[float]) -> float | None:
    """The smallest gap between consecutive events (None for fewer than two)."""
    ordered = sorted(stamps)
    if len(ordered) < 2:
        return None
    return min(b - a for a, b in pairwise(ordered))
