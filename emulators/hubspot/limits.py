"""HubSpot API rate limits: a rolling 10-second burst budget per app, search at 5 requests/s, a daily budget.

Values are HubSpot's published private-app limits (developers.hubspot.com/docs/guides/apps/api-usage/
usage-details and the changelog "Increasing our API limits", 2024): Free/Starter 100 requests per 10 s and
250,000 a day; Professional 190 per 10 s and 650,000 a day; Enterprise 190 per 10 s and 1,000,000 a day; the
API Limit Increase pack raises the burst to 250 per 10 s and adds 1,000,000 a day. The CRM search endpoints
are limited to 5 requests per second per account and do not send the ``X-HubSpot-RateLimit-*`` headers.

``time_scale`` multiplies every budget per unit of time (``time_scale=10`` on free = 1,000 requests per 10 s)
so short benchmarks exercise the same code paths without waiting for real windows.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from emulators.hubspot.exceptions import RateLimited

BURST_WINDOW_S = 10.0
SEARCH_WINDOW_S = 1.0
SEARCH_PER_SECOND = 5
DAY_S = 86_400.0


@dataclass(frozen=True)
class Tier:
    """Burst (per rolling 10 s) and daily budgets of a HubSpot subscription tier."""

    burst: int
    daily: int


TIERS: dict[str, Tier] = {
    "free": Tier(100, 250_000),
    "starter": Tier(100, 250_000),
    "professional": Tier(190, 650_000),
    "enterprise": Tier(190, 1_000_000),
    # The API Limit Increase pack (Professional/Enterprise only): 250 per 10 s, +1,000,000 a day.
    "api_addon": Tier(250, 1_650_000),
}


class RateLimiter:
    """Sliding-window counters per app (burst), per account (search) and per day.

    A throttled request does not consume budget, like HubSpot (a 429 is not counted against the limits).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Back to real limits: enabled, free tier, time_scale 1, empty windows."""
        with self._lock:
            self.enabled = True
            self.tier_name = "free"
            self.time_scale = 1.0
            self._burst: dict[str, deque[float]] = {}
            self._search: deque[float] = deque()
            self._daily: deque[float] = deque()

    def configure(
        self, enabled: bool | None = None, time_scale: float | None = None, tier: str | None = None
    ) -> dict[str, object]:
        """Change settings (``POST /_emulator/quotas``); unknown tiers raise ValueError."""
        with self._lock:
            if tier is not None:
                if tier not in TIERS:
                    raise ValueError(f"unknown tier {tier!r}; use one of {sorted(TIERS)}")
                self.tier_name = tier
            if time_scale is not None:
                if float(time_scale) <= 0:
                    raise ValueError("time_scale must be positive")
                self.time_scale = float(time_scale)
            if enabled is not None:
                self.enabled = bool(enabled)
            self._burst.clear()
            self._search.clear()
            return self.settings()

    def settings(self) -> dict[str, object]:
        """Current settings and effective budgets."""
        tier = TIERS[self.tier_name]
        return {
            "enabled": self.enabled,
            "tier": self.tier_name,
            "time_scale": self.time_scale,
            "burst_per_10s": self.burst_max,
            "search_per_second": self.search_max,
            "daily": self.daily_max,
            "tier_burst": tier.burst,
            "tier_daily": tier.daily,
        }

    @property
    def burst_max(self) -> int:
        """Effective requests allowed per rolling 10 s."""
        return max(1, int(TIERS[self.tier_name].burst * self.time_scale))

    @property
    def search_max(self) -> int:
        """Effective search requests allowed per second."""
        return max(1, int(SEARCH_PER_SECOND * self.time_scale))

    @property
    def daily_max(self) -> int:
        """Effective requests allowed per rolling day."""
        return max(1, int(TIERS[self.tier_name].daily * self.time_scale))

    @staticmethod
    def _trim(window: deque[float], now: float, span: float) -> None:
        while window and window[0] <= now - span:
            window.popleft()

    def check(self, app: str, is_search: bool) -> dict[str, str]:
        """Admit one request or raise :class:`RateLimited`; returns the headers to send.

        Search requests also count toward the app's 10-second and daily budgets (they are API calls), and
        get no ``X-HubSpot-RateLimit-*`` headers, as HubSpot documents.
        """
        with self._lock:
            if not self.enabled:
                return {}
            now = time.monotonic()
            burst = self._burst.setdefault(app, deque())
            self._trim(burst, now, BURST_WINDOW_S)
            self._trim(self._daily, now, DAY_S)
            if len(self._daily) >= self.daily_max:
                raise RateLimited("DAILY", "You have reached your daily limit.")
            if is_search:
                self._trim(self._search, now, SEARCH_WINDOW_S)
                if len(self._search) >= self.search_max:
                    raise RateLimited("SECONDLY", "You have reached your secondly limit.")
            if len(burst) >= self.burst_max:
                raise RateLimited("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.")
            burst.append(now)
            self._daily.append(now)
            if is_search:
                self._search.append(now)
                return {}
            return {
                "X-HubSpot-RateLimit-Daily": str(self.daily_max),
                "X-HubSpot-RateLimit-Daily-Remaining": str(self.daily_max - len(self._daily)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                "X-HubSpot-RateLimit-Max": str(self.burst_max),
                "X-HubSpot-RateLimit-Remaining": str(self.burst_max - len(burst)),
                "X-HubSpot-RateLimit-Secondly": str(max(1, self.burst_max // 10)),
                "X-HubSpot-RateLimit-Secondly-Remaining": str(max(0, (self.burst_max - len(burst)) // 10)),
            }
