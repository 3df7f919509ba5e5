"""Per-app test instruments shared by the server and the ``/_emulator/`` controls: call log and faults."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any


class CallLog:
    """API calls by operation, throttled calls, and the time of each admitted write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget all counts."""
        with self._lock:
            self.by_operation: Counter[str] = Counter()
            self.total = 0
            self.throttled = 0
            self.writes: list[float] = []

    def record(self, operation: str) -> None:
        """Count one API call."""
        with self._lock:
            self.total += 1
            self.by_operation[operation] += 1

    def record_throttled(self) -> None:
        """Count one throttled call (already counted in total)."""
        with self._lock:
            self.throttled += 1

    def record_write(self) -> None:
        """Note the time of a write the quotas admitted."""
        with self._lock:
            self.writes.append(time.time())

    def snapshot(self) -> dict[str, Any]:
        """The ``GET /_emulator/calls`` body."""
        with self._lock:
            return {
                "total": self.total,
                "by_operation": dict(self.by_operation),
                "throttled": self.throttled,
                "writes": list(self.writes),
            }


#: Error codes ``/_emulator/faults/refuse`` can answer with.
REFUSAL_CODES = frozenset({"ValidationException", "ConflictException", "ResourceNotFoundException"})


class Faults:
    """Injected failures, deterministic for a seed: throttling, 500s and added latency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Operation -> {"code", "message", "times"} (``/_emulator/faults/refuse``); times None: until lifted.
        self.refusals: dict[str, dict[str, Any]] = {}
        self.configure({})

    def configure(self, body: dict[str, Any]) -> None:
        """Set ``throttle_rate``, ``error_rate`` (0..1), ``latency_ms`` and ``seed``."""
        throttle, error = float(body.get("throttle_rate", 0.0)), float(body.get("error_rate", 0.0))
        if not (0 <= throttle <= 1 and 0 <= error <= 1):
            raise ValueError("throttle_rate and error_rate must be between 0 and 1")
        with self._lock:
            self.throttle_rate, self.error_rate = throttle, error
            self.latency_ms = float(body.get("latency_ms", 0.0))
            self.seed = int(body.get("seed", 0))
            self._rng = random.Random(self.seed)

    def settings(self) -> dict[str, Any]:
        """Current configuration."""
        return {
            "throttle_rate": self.throttle_rate,
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
            "seed": self.seed,
        }

    def draw(self) -> tuple[bool, bool]:
        """(throttle this call, fail this call); two draws a call keep the sequence seed-deterministic."""
        with self._lock:
            return self._rng.random() < self.throttle_rate, self._rng.random() < self.error_rate

    def refuse(self, body: dict[str, Any]) -> dict[str, Any]:
        """Make Partner Central refuse one operation: ``{"operation", "code", "message", "field", "times"}``.

        ``code``: ``ValidationException`` (default; a business rule, ``ErrorList`` naming ``field`` when
        given), ``ConflictException`` or ``ResourceNotFoundException`` (what the write operations' models
        list); ``times``: how many calls (absent: until lifted); ``times`` 0 lifts it. The refused call
        changes nothing, as AWS's refusals do.
        """
        operation = str(body["operation"])
        code = str(body.get("code") or "ValidationException")
        if code not in REFUSAL_CODES:
            raise ValueError(f"code must be one of {sorted(REFUSAL_CODES)}")
        times = body.get("times")
        with self._lock:
            if times is not None and int(times) <= 0:
                self.refusals.pop(operation, None)
            else:
                self.refusals[operation] = {
                    "code": code,
                    "message": str(body.get("message") or f"{operation} refused (injected fault)"),
                    "field": body.get("field"),
                    "times": None if times is None else int(times),
                }
            return {op: dict(r) for op, r in self.refusals.items()}

    def refusal(self, operation: str) -> dict[str, Any] | None:
        """The refusal this call of ``operation`` gets (counted down), if one is set."""
        with self._lock:
            found = self.refusals.get(operation)
            if found is None:
                return None
            if found["times"] is not None:
                found["times"] -= 1
                if found["times"] <= 0:
                    del self.refusals[operation]
            return dict(found)

    def clear_refusals(self) -> None:
        """Lift every refusal (``/_emulator/reset``)."""
        with self._lock:
            self.refusals.clear()
