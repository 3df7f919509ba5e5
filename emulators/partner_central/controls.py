"""Test controls under ``/_emulator/``, kept apart from the emulated API (like moto's ``/moto-api/``).

They reset and seed state, read call counts, inject faults, tune quotas, and play AWS's side of the
co-sell process (review decisions, referrals, console edits).
"""

from __future__ import annotations

import json
import random
import threading
import time
from typing import TYPE_CHECKING, Any

from emulators.partner_central.seed import seed_opportunities

if TYPE_CHECKING:
    from emulators.partner_central.server import PartnerCentralApp


class Faults:
    """Injected failures, deterministic for a seed: throttling, 500s and added latency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
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


def handle(
    app: PartnerCentralApp, method: str, path: str, body: dict[str, Any], query: dict[str, str]
) -> tuple[int, Any]:
    """Route one control request; returns (status, JSON body)."""
    b = app.backend
    route = path[len("/_emulator") :].rstrip("/")
    if route == "/reset" and method == "POST":
        app.reset()
        return 200, {"reset": True}
    if route == "/health":
        return 200, {"ok": True}
    if route == "/seed" and method == "POST":
        started = time.perf_counter()
        ids = seed_opportunities(
            b, int(body.get("opportunities", 0)), int(body.get("seed", 0)), body.get("catalog", "AWS")
        )
        return 200, {"opportunity_ids": ids, "seconds": round(time.perf_counter() - started, 3)}
    if route == "/calls":
        if method == "DELETE":
            app.calls.reset()
            return 200, {"reset": True}
        return 200, app.calls.snapshot()
    if route == "/faults":
        if method == "POST":
            app.faults.configure(body)
        return 200, app.faults.settings()
    if route == "/quotas":
        if method == "POST":
            current = app.quotas.settings()
            app.quotas.configure(
                bool(body.get("enabled", current["enabled"])),
                float(body.get("time_scale", current["time_scale"])),
            )
        return 200, app.quotas.settings()
    if route == "/config" and method == "POST":
        if "task_delay_ms" in body:
            b.task_delay_ms = int(body["task_delay_ms"])
        if "events_enabled" in body:
            b.events.enabled = bool(body["events_enabled"])
        return 200, {"task_delay_ms": b.task_delay_ms, "events_enabled": b.events.enabled}
    if route == "/clock" and method == "POST":
        # Lets tests reach e.g. invitation expiry (15 days) without waiting.
        with b.lock:
            b.clock_offset_ms += int(float(body.get("advance_seconds", 0)) * 1000)
        b.run_due_tasks()
        b.expire_invitations()
        return 200, {"clock_offset_ms": b.clock_offset_ms}
    if route == "/events":
        if method == "DELETE":
            b.events.clear()
            return 200, {"cleared": True}
        events = b.events.events()
        if query.get("detail-type"):
            events = [e for e in events if e["detail-type"] == query["detail-type"]]
        return 200, {"events": events, "count": len(events)}
    if route == "/event-target" and method == "POST":
        b.events.set_target(body.get("url"), body.get("headers"))
        return 200, {"url": body.get("url")}
    if route == "/simulate/review" and method == "POST":
        b.run_due_tasks()
        return 200, b.simulate_review(
            body.get("catalog", "AWS"),
            body["identifier"],
            body["review_status"],
            body.get("review_comments") or body.get("feedback"),
            body.get("review_status_reason"),
        )
    if route == "/simulate/aws-referral" and method == "POST":
        return 200, b.simulate_aws_referral(body.get("catalog", "AWS"), body.get("payload"))
    if route == "/simulate/aws-update" and method == "POST":
        fields = {k: v for k, v in body.items() if k not in ("catalog", "identifier")}
        return 200, b.simulate_aws_update(body.get("catalog", "AWS"), body["identifier"], fields)
    if route == "/state" and method == "GET":
        return 200, json.loads(json.dumps(b.dump(), default=str))
    return 404, {"error": f"no control {method} {path}"}
