"""Webhook deliveries as HubSpot makes them, from a background thread.

HubSpot (developers.hubspot.com/docs/api/webhooks and ".../validating-requests"):

* sends a JSON array of events (at most 100 per request) to the app's target URL with ``POST``;
* signs each request with ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(client_secret,
  method + uri + body + timestamp)) and ``X-HubSpot-Request-Timestamp`` (epoch ms), and also sends the v1
  signature ``X-HubSpot-Signature`` = hex(SHA-256(client_secret + body)) with
  ``X-HubSpot-Signature-Version: v1``;
* retries failed deliveries (connection failure, timeout, or a non-2xx answer) up to 10 times, spread over
  24 hours, with backoff; ``attemptNumber`` counts from 0.

Here the backoff is ``retry_base_s * 2**attempt`` (configurable, default 1 s) so tests see retries quickly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from emulators.hubspot import schema
from emulators.hubspot.models import Event, HubSpotBackend

KINDS = ("creation", "propertyChange", "deletion", "associationChange")
WEBHOOK_OBJECTS = ("deal", "contact", "company")
MAX_EVENTS_PER_REQUEST = 100
MAX_ATTEMPTS = 10


def sign_v3(client_secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature (base64 HMAC-SHA256 over method + uri + body + timestamp)."""
    source = method.encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(client_secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_v1(client_secret: str, body: bytes) -> str:
    """HubSpot's v1 signature (hex SHA-256 of client secret + body)."""
    return hashlib.sha256(client_secret.encode() + body).hexdigest()


class WebhookDispatcher:
    """Turns backend events into HubSpot webhook payloads and delivers them on a daemon thread."""

    def __init__(self, backend: HubSpotBackend, app_id: int = 1234567) -> None:
        self.backend = backend
        self.app_id = app_id
        self._cond = threading.Condition()
        self._event_ids = itertools.count(100)
        self._stop = False
        self.reset()
        backend.listeners.append(self.on_events)
        self._thread = threading.Thread(target=self._run, name="hubspot-webhooks", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        """Drop configuration, pending events and the delivery log."""
        with self._cond:
            self.target_url: str | None = None
            self.client_secret = ""
            self.subscriptions: list[dict[str, Any]] = []
            self.retry_base_s = 1.0
            self.max_attempts = MAX_ATTEMPTS
            self.batch_window_s = 0.05
            self.timeout_s = 5.0
            self._pending: list[dict[str, Any]] = []  # events waiting for their first attempt
            self._retries: list[tuple[float, int, list[dict[str, Any]]]] = []  # (due, attempt, events)
            self.deliveries: list[dict[str, Any]] = []
            self._cond.notify_all()

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply ``POST /_emulator/webhooks``; returns the stored configuration."""
        subs = []
        for i, sub in enumerate(body.get("subscriptions") or []):
            if isinstance(sub, str):
                sub = {"subscriptionType": sub}
            stype = str(sub.get("subscriptionType", ""))
            obj, _, kind = stype.partition(".")
            if obj not in WEBHOOK_OBJECTS or kind not in KINDS:
                raise ValueError(
                    f"unsupported subscriptionType {stype!r}; use <deal|contact|company>.<{'|'.join(KINDS)}>"
                )
            if kind == "propertyChange" and not sub.get("propertyName"):
                raise ValueError(f"{stype} subscriptions need a propertyName (as in HubSpot)")
            subs.append(
                {
                    "id": int(sub.get("id", 500_000 + i)),
                    "subscriptionType": stype,
                    "propertyName": sub.get("propertyName"),
                    "active": sub.get("active", True),
                }
            )
        with self._cond:
            self.target_url = body.get("target_url") or body.get("targetUrl")
            self.client_secret = str(body.get("client_secret") or body.get("clientSecret") or "")
            self.subscriptions = subs
            for key in ("retry_base_s", "batch_window_s", "timeout_s"):
                if key in body:
                    setattr(self, key, float(body[key]))
            if "max_attempts" in body:
                self.max_attempts = int(body["max_attempts"])
            return self.config()

    def config(self) -> dict[str, Any]:
        """The current configuration (the client secret is not echoed)."""
        return {
            "target_url": self.target_url,
            "subscriptions": self.subscriptions,
            "app_id": self.app_id,
            "portal_id": self.backend.portal_id,
            "retry_base_s": self.retry_base_s,
            "max_attempts": self.max_attempts,
        }

    # ------------------------------------------------------------------ event intake
    def on_events(self, events: list[Event]) -> None:
        """Backend listener: keep the events some subscription wants; never blocks on the network."""
        if not self.target_url or not self.subscriptions:
            return
        payloads = []
        for ev in events:
            singular = schema.OBJECT_TYPES[ev.object_type].singular
            if singular not in WEBHOOK_OBJECTS:
                continue
            stype = f"{singular}.{ev.kind}"
            for sub in self.subscriptions:
                if not sub["active"] or sub["subscriptionType"] != stype:
                    continue
                if ev.kind == "propertyChange" and sub["propertyName"] != ev.property_name:
                    continue
                payloads.append(self._payload(ev, sub))
        if payloads:
            with self._cond:
                self._pending.extend(payloads)
                self._cond.notify_all()

    def _payload(self, ev: Event, sub: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "eventId": next(self._event_ids),
            "subscriptionId": sub["id"],
            "portalId": self.backend.portal_id,
            "appId": self.app_id,
            "occurredAt": ev.occurred_ms,
            "subscriptionType": sub["subscriptionType"],
            "attemptNumber": 0,
            "objectId": int(ev.object_id),
            "changeSource": "INTEGRATION",
            "sourceId": str(self.app_id),
        }
        if ev.kind == "creation":
            out["changeFlag"] = "CREATED"
        elif ev.kind == "deletion":
            out["changeFlag"] = "DELETED"
        elif ev.kind == "propertyChange":
            out["propertyName"] = ev.property_name
            out["propertyValue"] = ev.property_value
        else:
            out.update(ev.extra)
            out.pop("objectId", None)
        return out

    # ------------------------------------------------------------------ delivery
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    now = time.monotonic()
                    due = [r for r in self._retries if r[0] <= now]
                    if self._pending or due:
                        break
                    wait = min((r[0] for r in self._retries), default=now + 1.0) - now
                    self._cond.wait(timeout=max(0.01, min(wait, 1.0)))
                if self._stop:
                    return
            # Let events from the same burst of API calls collect into one request, as HubSpot batches.
            time.sleep(self.batch_window_s)
            with self._cond:
                now = time.monotonic()
                jobs: list[tuple[int, list[dict[str, Any]]]] = []
                keep = []
                for due_at, attempt, events in self._retries:
                    (
                        jobs.append((attempt, events))
                        if due_at <= now
                        else keep.append((due_at, attempt, events))
                    )
                self._retries = keep
                pending, self._pending = self._pending, []
                for i in range(0, len(pending), MAX_EVENTS_PER_REQUEST):
                    jobs.append((0, pending[i : i + MAX_EVENTS_PER_REQUEST]))
                url, secret = self.target_url, self.client_secret
            for attempt, events in jobs:
                if url:
                    self._deliver(url, secret, attempt, events)

    def _deliver(self, url: str, secret: str, attempt: int, events: list[dict[str, Any]]) -> None:
        for ev in events:
            ev["attemptNumber"] = attempt
        body = json.dumps(events, separators=(",", ":")).encode()
        timestamp = str(int(time.time() * 1000))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks-nio)",
            "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, timestamp),
            "X-HubSpot-Request-Timestamp": timestamp,
            "X-HubSpot-Signature": sign_v1(secret, body),
            "X-HubSpot-Signature-Version": "v1",
        }
        status: int | None = None
        error = None
        try:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:  # noqa: S310
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            error = f"HTTP {exc.code}"
        except (OSError, urllib.error.URLError) as exc:
            error = str(exc)
        ok = status is not None and 200 <= status < 300
        with self._cond:
            record = {
                "attempt": attempt,
                "status": status,
                "ok": ok,
                "error": error,
                "events": len(events),
                "event_ids": [e["eventId"] for e in events],
                "subscription_types": sorted({e["subscriptionType"] for e in events}),
                "timestamp": int(timestamp),
                "will_retry": False,
            }
            if not ok and attempt + 1 < self.max_attempts:
                record["will_retry"] = True
                self._retries.append(
                    (
                        time.monotonic() + self.retry_base_s * (2**attempt),
                        attempt + 1,
                        [dict(e) for e in events],
                    )
                )
                self._cond.notify_all()
            self.deliveries.append(record)

    def pending(self) -> int:
        """Events queued or waiting for a retry."""
        with self._cond:
            return len(self._pending) + sum(len(r[2]) for r in self._retries)

    def stop(self) -> None:
        """Stop the delivery thread."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=2)
