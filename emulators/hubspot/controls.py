"""Test controls: call counting and fault injection (served under ``/_emulator/``).

* ``GET /_emulator/calls`` -> ``{"total", "by_endpoint": {"POST /crm/v3/objects/deals/batch/update": n},
  "throttled"}``; keys use the route template with the object type normalised to its name;
  ``/_emulator/`` calls are not counted; 429s count in ``total`` and ``throttled``.
* ``POST /_emulator/faults`` ``{"error_rate": 0.1, "latency_ms": 0, "seed": 1}`` makes that fraction of API
  requests answer 500/503 (deterministic for a seed), after sleeping ``latency_ms``.
  ``{"fail_ids": ["<object id>", ...]}`` makes batch update/upsert items (and v4 batch association creates)
  touching those ids fail per item: the batch answers 207 with a ``StandardError`` for those items only.
  ``{"endpoint_faults": {"POST /crm/v3/objects/tasks/batch/create": {"times": 1, "when": "before"}}}``
  makes the next ``times`` calls of that endpoint (the key as ``/_emulator/calls`` names it) fail with
  ``status`` (default 500): ``when: "before"`` fails without applying the request; ``when: "after"``
  applies it, waits ``latency_ms`` (default 0) and then fails, like a timeout after the server applied a
  write.
  ``{"throttle_rate": 0.2, "retry_after_s": 1}`` answers that fraction of API requests (drawn before the
  rate limiter, deterministic for a seed) with HubSpot's 429 ``TEN_SECONDLY_ROLLING`` body and a
  ``Retry-After`` header of ``retry_after_s`` whole seconds (default 1); nothing is applied and, as with
  HubSpot, the refused request uses no budget.
  Every key is optional; omitted keys keep their value. ``{}`` after a reset means no faults.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

from emulators.hubspot.exceptions import InternalError


class CallLog:
    """Thread-safe per-endpoint request counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Zero all counters."""
        with self._lock:
            self.total = 0
            self.throttled = 0
            self.by_endpoint: Counter[str] = Counter()

    def record(self, endpoint: str, throttled: bool = False) -> None:
        """Count one API request."""
        with self._lock:
            self.total += 1
            self.by_endpoint[endpoint] += 1
            if throttled:
                self.throttled += 1

    def snapshot(self) -> dict[str, Any]:
        """The ``GET /_emulator/calls`` body."""
        with self._lock:
            return {"total": self.total, "by_endpoint": dict(self.by_endpoint), "throttled": self.throttled}


def _throttle_rng(seed: int) -> random.Random:
    """The 429 draws' own sequence: throttling on or off never shifts which requests get a 5xx."""
    return random.Random(seed * 7919 + 1)


class Faults:
    """Random 429 and 5xx answers and added latency, deterministic for a seed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """No faults."""
        with self._lock:
            self.error_rate = 0.0
            self.throttle_rate = 0.0
            self.retry_after_s = 1
            self.latency_ms = 0
            self.seed = 0
            self._rng = random.Random(0)
            self._throttle_rng = _throttle_rng(0)
            self.endpoint_faults: dict[str, dict[str, Any]] = {}

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply ``POST /_emulator/faults`` (``fail_ids`` are handled by the caller)."""
        with self._lock:
            if "error_rate" in body:
                rate = float(body["error_rate"])
                if not 0 <= rate <= 1:
                    raise ValueError("error_rate must be between 0 and 1")
                self.error_rate = rate
            if "throttle_rate" in body:
                throttle = float(body["throttle_rate"])
                if not 0 <= throttle <= 1:
                    raise ValueError("throttle_rate must be between 0 and 1")
                self.throttle_rate = throttle
            if "retry_after_s" in body:
                self.retry_after_s = max(0, int(body["retry_after_s"]))
            if "latency_ms" in body:
                self.latency_ms = max(0, int(body["latency_ms"]))
            if "seed" in body or "error_rate" in body or "throttle_rate" in body:
                self.seed = int(body.get("seed", self.seed))
                self._rng = random.Random(self.seed)
                self._throttle_rng = _throttle_rng(self.seed)
            if "endpoint_faults" in body:
                faults: dict[str, dict[str, Any]] = {}
                for key, spec in (body["endpoint_faults"] or {}).items():
                    when = spec.get("when", "before")
                    if when not in ("before", "after"):
                        raise ValueError("endpoint_faults: 'when' must be 'before' or 'after'")
                    faults[str(key)] = {
                        "times": int(spec.get("times", 1)),
                        "when": when,
                        "status": int(spec.get("status", 500)),
                        "latency_ms": max(0, int(spec.get("latency_ms", 0))),
                    }
                self.endpoint_faults = faults
            return {
                "error_rate": self.error_rate,
                "throttle_rate": self.throttle_rate,
                "retry_after_s": self.retry_after_s,
                "latency_ms": self.latency_ms,
                "seed": self.seed,
                "endpoint_faults": {k: dict(v) for k, v in self.endpoint_faults.items()},
            }

    def throttled(self) -> bool:
        """Whether to refuse this request with an injected 429 (one draw per API request)."""
        with self._lock:
            return self.throttle_rate > 0 and self._throttle_rng.random() < self.throttle_rate

    def take(self, endpoint: str) -> dict[str, Any] | None:
        """The fault for this call of ``endpoint``, if one is armed (each call uses one of its ``times``)."""
        with self._lock:
            spec = self.endpoint_faults.get(endpoint)
            if not spec or spec["times"] <= 0:
                return None
            spec["times"] -= 1
            return dict(spec)

    @staticmethod
    def fail_after(spec: dict[str, Any]) -> None:
        """Raise the fault of an applied request (after its latency)."""
        if spec["latency_ms"]:
            time.sleep(spec["latency_ms"] / 1000)
        raise InternalError(spec["status"])

    def apply(self) -> None:
        """Sleep the configured latency, then maybe raise an injected 5xx."""
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        with self._lock:
            if self.error_rate <= 0:
                return
            hit = self._rng.random() < self.error_rate
            status = self._rng.choice((500, 503)) if hit else 0
        if hit:
            raise InternalError(status)
