"""``cosell_sync.webhooks``: HubSpot's v3 signature, batch naming, and events mapped to opportunities.

Signatures are made by the HubSpot emulator's own ``sign_v3`` (written from HubSpot's docs independently of
the sync code), so a pass here means the receiver accepts what HubSpot sends.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import boto3
import pytest

from cosell_sync.bootstrap import ensure_storage
from cosell_sync.events import EventKind, EventLedger, event_audit_entries
from cosell_sync.webhooks import (
    MalformedBatchError,
    SignatureError,
    batch_key,
    parse_batch,
    parsed_events,
    resolve_opportunities,
    run_id,
    signed_uri,
    verify_v3,
)
from emulators.hubspot.webhooks import sign_v3

SECRET = "app-client-secret-1"  # a test value, not a real secret
URL = "https://airflow.example.com/cosell/hubspot/webhooks"
NOW_MS = 1_790_000_000_000


def _event(event_id: int, stype: str = "deal.propertyChange", object_id: int = 501, **extra: Any) -> dict:
    out = {
        "eventId": event_id,
        "subscriptionId": 77,
        "portalId": 12345678,
        "appId": 1234567,
        "occurredAt": NOW_MS - 2000,
        "subscriptionType": stype,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM_UI",
    }
    if stype.endswith("propertyChange"):
        out.update(propertyName="dealstage", propertyValue="contractsent")
    out.update(extra)
    return out


def _body(*events: dict) -> bytes:
    return json.dumps(list(events), separators=(",", ":")).encode()


# -- signature ---------------------------------------------------------------------------------------
def _verify(uri: str, body: bytes, timestamp: str, signature: str | None, now_ms: int = NOW_MS) -> None:
    verify_v3(SECRET, "POST", uri, body, timestamp, signature, now_ms=now_ms)


def test_a_request_signed_as_hubspot_signs_it_is_accepted() -> None:
    body = _body(_event(1))
    ts = str(NOW_MS - 1000)
    _verify(URL, body, ts, sign_v3(SECRET, "POST", URL, body, ts))


@pytest.mark.parametrize(
    ("secret", "uri", "tamper", "ts_offset_ms", "drop", "why"),
    [
        pytest.param("someone-elses-secret", URL, False, 0, False, "does not match", id="forged-secret"),
        pytest.param(SECRET, URL, True, 0, False, "does not match", id="body-tampered"),
        pytest.param(SECRET, URL + "?x=1", False, 0, False, "does not match", id="other-uri"),
        pytest.param(SECRET, URL, False, -301_000, False, "more than 300s", id="stale"),
        pytest.param(SECRET, URL, False, 301_000, False, "more than 300s", id="from-the-future"),
        pytest.param(SECRET, URL, False, 0, True, "are required", id="unsigned"),
    ],
)
def test_forged_stale_or_unsigned_requests_are_refused(
    secret: str, uri: str, tamper: bool, ts_offset_ms: int, drop: bool, why: str
) -> None:
    body = _body(_event(1))
    ts = str(NOW_MS + ts_offset_ms)
    signature = sign_v3(secret, "POST", uri, body, ts)
    sent = body.replace(b"contractsent", b"closedwon") if tamper else body
    with pytest.raises(SignatureError) as err:
        _verify(URL, sent, ts, None if drop else signature)
    assert why in err.value.reason
    assert SECRET not in str(err.value)


def test_a_replayed_request_is_refused_once_stale_and_its_signature_cannot_be_reused() -> None:
    body = _body(_event(1))
    ts = str(NOW_MS)
    signature = sign_v3(SECRET, "POST", URL, body, ts)
    _verify(URL, body, ts, signature)  # the original delivery
    with pytest.raises(SignatureError, match="more than"):  # the same request six minutes later
        _verify(URL, body, ts, signature, now_ms=NOW_MS + 360_000)
    with pytest.raises(SignatureError, match="does not match"):  # ...with a fresh timestamp put on it
        _verify(URL, body, str(NOW_MS + 360_000), signature, now_ms=NOW_MS + 360_000)


def test_the_uri_is_compared_as_hubspot_signs_it_with_listed_characters_decoded() -> None:
    # HubSpot decodes %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B before signing; others stay encoded.
    received = "https://airflow.example.com/cosell/hubspot/webhooks?src=crm%3Adeals%2Cv3&n=a%20b"
    assert (
        signed_uri(received) == "https://airflow.example.com/cosell/hubspot/webhooks?src=crm:deals,v3&n=a%20b"
    )
    body = _body(_event(1))
    ts = str(NOW_MS)
    _verify(received, body, ts, sign_v3(SECRET, "POST", signed_uri(received), body, ts))


# -- batches -----------------------------------------------------------------------------------------
def test_a_retried_delivery_names_the_same_batch_and_run() -> None:
    first = parse_batch(_body(_event(1), _event(2, "company.propertyChange", 900)))
    retry = parse_batch(
        _body(_event(2, "company.propertyChange", 900, attemptNumber=3), _event(1, attemptNumber=3))
    )
    other = parse_batch(_body(_event(1), _event(3)))
    assert first.batch_id == retry.batch_id != other.batch_id
    assert run_id(first.batch_id) == run_id(retry.batch_id)
    assert first.keys == ["hs-12345678-1-77", "hs-12345678-2-77"]
    assert first.object_ids() == {"company": ["900"], "deal": ["501"]}
    from datetime import UTC, datetime

    assert batch_key(first.batch_id, datetime(2026, 12, 6, 23, 59, tzinfo=UTC)) == (
        f"webhooks/hubspot/2026/12/06/{first.batch_id}.json"
    )


def test_malformed_events_are_kept_with_a_reason_not_raised() -> None:
    batch = parse_batch(
        _body(
            _event(1),
            {"eventId": 2, "portalId": 12345678, "subscriptionType": "ticket.creation", "occurredAt": 1},
            {"hello": "world"},
        )
    )
    [(_, ok, r1), (k2, bad, r2), (k3, none, r3)] = batch.events
    assert (ok is not None, r1) == (True, None)
    assert (k2, bad) == ("hs-12345678-2-0", None)
    assert "subscriptionType" in r2
    assert (k3, none) == (None, None)
    assert r3.startswith("malformed")
    with pytest.raises(MalformedBatchError, match="not a JSON array"):
        parse_batch(b'{"not": "an array"}')


# -- events to opportunities -------------------------------------------------------------------------
class FakeGateway:
    """Deals with their link property and associations, counting calls as ``HubSpotGateway`` does."""

    def __init__(self, links: dict[str, str], assoc: dict[tuple[str, str], list[str]]) -> None:
        self.links, self.assoc, self.calls = links, assoc, Counter()

    def associations(self, from_type: str, to_type: str, ids: list[str]) -> dict[str, list[str]]:
        self.calls[f"associations:{from_type}->{to_type}"] += 1
        return {i: self.assoc[(from_type, i)] for i in ids if (from_type, i) in self.assoc}

    def batch_read(self, object_type: str, ids: list[str], properties: list[str]) -> tuple[list, list]:
        self.calls[f"batch_read:{object_type}"] += 1
        found = [{"id": i, "properties": {"aws_opportunity_id": self.links.get(i)}} for i in ids]
        return [f for f in found if f["id"] in self.links or f["id"] == "503"], []


def test_deal_company_contact_and_association_events_name_their_opportunities() -> None:
    gateway = FakeGateway(
        links={"501": "O1001", "502": "O1002"},
        assoc={("companies", "900"): ["501", "502"], ("contacts", "700"): ["502"], ("contacts", "701"): []},
    )
    batch = parse_batch(
        _body(
            _event(1, "deal.propertyChange", 501),
            _event(2, "company.propertyChange", 900, propertyName="name"),
            _event(3, "contact.creation", 700),
            _event(4, "deal.deletion", 999),  # gone from HubSpot: the baseline knows its opportunity
            _event(5, "deal.creation", 503),  # a new deal: no opportunity yet
            _event(6, "contact.propertyChange", 701, propertyName="email"),  # no deal
            {
                **_event(7, "deal.associationChange"),
                "objectId": None,
                "associationType": "COMPANY_TO_DEAL",
                "fromObjectId": 900,
                "toObjectId": 502,
                "associationRemoved": False,
            },
            {"eventId": 8, "portalId": 12345678, "subscriptionType": "deal.creation"},  # malformed
        )
    )
    found = resolve_opportunities(gateway, batch, "aws_opportunity_id", known_links={"999": "O1999"})
    assert found.opportunities == {
        "hs-12345678-1-77": ("O1001",),
        "hs-12345678-2-77": ("O1001", "O1002"),
        "hs-12345678-3-77": ("O1002",),
        "hs-12345678-4-77": ("O1999",),
        "hs-12345678-7-77": ("O1002",),
    }
    # The companies and contacts the run's HubSpot extract reads, with their deals.
    assert found.related == {"company": {"900": ["501", "502"]}, "contact": {"700": ["502"]}}
    assert "no linked opportunity" in found.reasons["hs-12345678-5-77"]
    assert "no deal" in found.reasons["hs-12345678-6-77"]
    # One association read per object type, one deal read for every deal of the batch.
    assert gateway.calls == Counter(
        {"associations:companies->deals": 1, "associations:contacts->deals": 1, "batch_read:deals": 1}
    )

    events = parsed_events(batch, found, "AWS")
    assert [e.kind for e in events] == [EventKind.OPPORTUNITY] * 4 + [None, None, EventKind.OPPORTUNITY, None]
    assert {e.catalog for e in events} == {"AWS"}
    assert events[0].detail_type == "hubspot:deal.propertyChange"
    run = {"catalog": "AWS", "run_id": "hs-abc", "started_at": "2026-12-06T10:00:00+00:00"}
    audit = event_audit_entries(run, events)
    assert {a.source for a in audit} == {"HUBSPOT"}
    assert [a.action for a in audit].count("EVENT_IGNORED") == 3
    # Ids only: no property value of the webhook reaches the audit.
    assert "contractsent" not in json.dumps([a.metadata for a in audit])


# -- dedupe ------------------------------------------------------------------------------------------
def test_reserved_events_go_to_the_batch_run_once(aws_endpoint: str) -> None:
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    ensure_storage(s3, ddb, "cosell-test", "cosell-audit", "cosell-state")
    ledger = EventLedger(ddb, "cosell-state", claim_seconds=60)
    keys = ["hs-1-1-1", "hs-1-2-1"]
    assert ledger.reserve(keys, "hs-batch") == (keys, [])
    assert ledger.reserve(keys, "hs-batch") == (keys, [])  # HubSpot retried before the run started
    assert ledger.reserve(keys, "hs-other") == ([], keys)  # another batch with the same events
    assert ledger.claim(keys, "manual-1") == ([], keys)  # a run without the batch reference
    assert ledger.claim(keys, "manual-2", reserved_for="hs-batch") == (keys, [])  # the batch's run
    assert ledger.done(keys, "manual-2") == 2
    assert ledger.reserve(keys, "hs-batch") == ([], keys)  # delivered again after it was synced
    assert ledger.claim(keys, "manual-3", reserved_for="hs-batch") == ([], keys)
