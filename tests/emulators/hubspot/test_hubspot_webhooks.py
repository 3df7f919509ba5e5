"""Webhooks arrive batched, signed (v3 and v1) and verifiable, and failed deliveries are retried."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from emulators.common.server import ThreadedServer

SECRET = "client-secret-123"


class Receiver:
    """A webhook endpoint that records requests and fails the first ``fail_first`` of them."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = 0
        self.lock = threading.Lock()
        self.server = ThreadedServer(self.app)

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        with self.lock:
            self.requests.append({"headers": dict(req.headers), "body": req.get_data(), "url": req.url})
            failing = len(self.requests) <= self.fail_first
        return Response(status=500 if failing else 200)(environ, start_response)

    def wait_for(self, predicate: Any, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self.requests):
                    return
            time.sleep(0.05)
        raise AssertionError(f"timed out; got {len(self.requests)} requests")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.server.start()
    yield r
    r.server.stop()


def _verify_v3(req: dict[str, Any], url: str) -> bool:
    # Receiver-side check from HubSpot's docs: base64 HMAC-SHA256(secret, method + uri + body + timestamp).
    ts = req["headers"]["X-Hubspot-Request-Timestamp"]
    assert abs(time.time() * 1000 - int(ts)) < 5 * 60 * 1000  # reject anything older than 5 minutes
    source = b"POST" + url.encode() + req["body"] + ts.encode()
    expected = base64.b64encode(hmac.new(SECRET.encode(), source, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, req["headers"]["X-Hubspot-Signature-V3"])


def test_signed_batched_events(fast, receiver) -> None:
    target = receiver.server.url + "/hooks?src=hs"
    fast.control(
        "POST",
        "webhooks",
        {
            "target_url": target,
            "client_secret": SECRET,
            "subscriptions": [
                {"subscriptionType": "deal.creation"},
                {"subscriptionType": "deal.propertyChange", "propertyName": "dealstage"},
                {"subscriptionType": "deal.deletion"},
                {"subscriptionType": "contact.associationChange"},
            ],
        },
    )
    created = []
    for chunk in range(2):
        resp = fast(
            "POST",
            "/crm/v3/objects/deals/batch/create",
            {"inputs": [{"properties": {"dealname": f"D{chunk}-{i}"}} for i in range(75)]},
        )
        assert resp.status_code == 201
        created += [r["id"] for r in resp.json()["results"]]
    receiver.wait_for(lambda reqs: sum(len(json.loads(r["body"])) for r in reqs) >= 150)
    for req in receiver.requests:
        events = json.loads(req["body"])
        assert 1 <= len(events) <= 100
        assert _verify_v3(req, target)
        assert req["headers"]["X-Hubspot-Signature-Version"] == "v1"
        assert (
            req["headers"]["X-Hubspot-Signature"] == hashlib.sha256(SECRET.encode() + req["body"]).hexdigest()
        )
    events = [e for r in receiver.requests for e in json.loads(r["body"])]
    assert sorted(str(e["objectId"]) for e in events) == sorted(created)
    assert all(e["subscriptionType"] == "deal.creation" and e["changeFlag"] == "CREATED" for e in events)
    assert len(receiver.requests) >= 2

    receiver.requests.clear()
    fast("PATCH", f"/crm/v3/objects/deals/{created[0]}", {"properties": {"dealstage": "closedwon"}})
    fast("PATCH", f"/crm/v3/objects/deals/{created[1]}", {"properties": {"amount": "5"}})  # not subscribed
    contact = fast("POST", "/crm/v3/objects/contacts", {"properties": {"email": "w@h.test"}}).json()
    fast("PUT", f"/crm/v4/objects/contacts/{contact['id']}/associations/default/deals/{created[2]}")
    fast("DELETE", f"/crm/v3/objects/deals/{created[3]}")
    receiver.wait_for(lambda reqs: len([e for r in reqs for e in json.loads(r["body"])]) >= 3)
    time.sleep(0.3)
    events = [e for r in receiver.requests for e in json.loads(r["body"])]
    kinds = sorted(e["subscriptionType"] for e in events)
    assert kinds == ["contact.associationChange", "deal.deletion", "deal.propertyChange"]
    change = next(e for e in events if e["subscriptionType"] == "deal.propertyChange")
    assert change["propertyName"] == "dealstage"
    assert change["propertyValue"] == "closedwon"
    assoc = next(e for e in events if e["subscriptionType"] == "contact.associationChange")
    assert assoc["associationType"] == "CONTACT_TO_DEAL"
    assert assoc["associationRemoved"] is False
    assert assoc["fromObjectId"] == int(contact["id"])
    # Seeding fires no webhooks.
    receiver.requests.clear()
    fast.control("POST", "seed", {"deals": 5, "companies": 1, "contacts": 2})
    time.sleep(0.3)
    assert receiver.requests == []


def test_failed_deliveries_are_retried_with_backoff(fast, receiver) -> None:
    receiver.fail_first = 2
    fast.control(
        "POST",
        "webhooks",
        {
            "target_url": receiver.server.url + "/h",
            "client_secret": SECRET,
            "subscriptions": ["company.creation"],
            "retry_base_s": 0.1,
        },
    )
    resp = fast("POST", "/crm/v3/objects/companies", {"properties": {"name": "Retry Co"}})
    assert resp.status_code == 201
    # Delivery never blocks the API request: it answered before the retries (0.1 s, 0.2 s) were made.
    assert len(receiver.requests) < 3
    receiver.wait_for(lambda reqs: len(reqs) >= 3)
    attempts = [json.loads(r["body"])[0]["attemptNumber"] for r in receiver.requests[:3]]
    assert attempts == [0, 1, 2]
    assert all(_verify_v3(r, receiver.server.url + "/h") for r in receiver.requests)
    log = fast.control("GET", "webhooks/deliveries")
    assert [d["ok"] for d in log["deliveries"][:3]] == [False, False, True]
    assert log["pending"] == 0
