"""Partner Central EventBridge events: parsing, what each detail-type makes cosell_events do, dedupe."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
import requests

from cosell_sync.bootstrap import ensure_storage
from cosell_sync.events import (
    DETAIL_TYPES,
    EventKind,
    EventLedger,
    event_audit_entries,
    events_from_conf,
    parse_event,
    plan_events,
)

OPP = "O1234567"
ENG = "eng-abcdefgh012345"
INV = "engi-abcdefgh01234"


def envelope(detail_type: str, detail: dict, event_id: str = "11111111-2222-3333-4444-555555555555") -> dict:
    """An event as EventBridge delivers it (developer guide samples)."""
    return {
        "version": "1" if detail_type.startswith("Opportunity") else "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": "aws.partnercentral-selling",
        "account": "111122223333",
        "time": "2026-12-06T09:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:partnercentral:us-east-1:111122223333:catalog/AWS/engagement/{ENG}"],
        "detail": detail,
    }


SAMPLES = {
    "Opportunity Created": {"schemaVersion": "1", "catalog": "AWS", "opportunity": {"identifier": OPP}},
    "Opportunity Updated": {"schemaVersion": "1", "catalog": "AWS", "opportunity": {"identifier": OPP}},
    "Opportunity Accepted": {"catalog": "AWS", "opportunity": {"identifier": OPP}},
    "Opportunity Rejected": {"catalog": "AWS", "opportunity": {"identifier": OPP}},
    **{
        f"Engagement Invitation {what}": {
            "catalog": "AWS",
            "engagementInvitation": {
                "id": INV,
                "engagementId": ENG,
                "participantType": "Receiver",
                "payloadType": "OpportunityInvitation",
            },
        }
        for what in ("Created", "Accepted", "Rejected", "Expired")
    },
    "Engagement Member Added": {
        "catalog": "AWS",
        "engagement": {"id": ENG},
        "engagementMember": {"accountId": "444455556666", "companyName": "AnyCompany"},
    },
    # No published sample: the engagement comes from the ARN in ``resources``.
    "Engagement Member Joined": {"catalog": "AWS"},
    "Engagement Resource Snapshot Created": {
        "catalog": "AWS",
        "resourceSnapshot": {"engagementId": ENG, "resourceType": "Opportunity", "resourceId": OPP},
    },
    "Resource Snapshot Created": {"catalog": "AWS", "resourceSnapshot": {"engagementId": ENG}},
    "Engagement Created": {"catalog": "AWS", "engagement": {"engagementId": ENG, "ContextTypes": ["Lead"]}},
    "Engagement Updated": {"catalog": "AWS", "engagement": {"engagementId": ENG}},
}


def test_every_documented_detail_type_names_its_records() -> None:
    assert set(SAMPLES) == set(DETAIL_TYPES)
    for detail_type, detail in SAMPLES.items():
        event = parse_event(envelope(detail_type, detail))
        assert event.kind is DETAIL_TYPES[detail_type], (detail_type, event.reason)
        named = {
            EventKind.OPPORTUNITY: (event.opportunity_ids, (OPP,)),
            EventKind.INVITATION: (event.invitation_ids, (INV,)),
            EventKind.ENGAGEMENT: (event.engagement_ids, (ENG,)),
        }[event.kind]
        assert named[0] == named[1], detail_type
        assert event.catalog == "AWS"


def test_unknown_malformed_and_foreign_events_are_ignored_with_the_rule_never_the_value() -> None:
    secret = "O99999999999999999999999"  # too long for an opportunity id; must not reach the reason
    cases = {
        "unknown": envelope("Opportunity Teleported", SAMPLES["Opportunity Updated"]),
        "bad id": envelope("Opportunity Updated", {"catalog": "AWS", "opportunity": {"identifier": secret}}),
        "no detail": {k: v for k, v in envelope("Opportunity Updated", {}).items() if k != "detail"},
        "other source": {
            **envelope("Opportunity Updated", SAMPLES["Opportunity Updated"]),
            "source": "aws.s3",
        },
        "no engagement": {**envelope("Engagement Updated", {"catalog": "AWS"}), "resources": []},
    }
    for name, raw in cases.items():
        event = parse_event(raw)
        assert event.ignored, name
        assert event.reason, name
        assert secret not in event.reason, name
    assert parse_event("not json").reason == "malformed: not JSON"
    assert parse_event([1, 2]).ignored
    assert parse_event({"id": "a b"}).event_id is None  # an id unfit for a key is not used as one
    # An SQS message body (JSON text) parses like the dict.
    import json

    assert parse_event(json.dumps(envelope("Opportunity Updated", SAMPLES["Opportunity Updated"]))).kind


def test_plan_groups_events_dedupes_ids_and_ignores_other_catalogs() -> None:
    events = [
        parse_event(envelope("Opportunity Updated", SAMPLES["Opportunity Updated"], "e1")),
        parse_event(envelope("Opportunity Updated", SAMPLES["Opportunity Updated"], "e1")),  # redelivered
        parse_event(
            envelope("Opportunity Created", {"catalog": "Sandbox", "opportunity": {"identifier": "O7"}}, "e2")
        ),
        parse_event(
            envelope("Engagement Invitation Expired", SAMPLES["Engagement Invitation Expired"], "e3")
        ),
        parse_event(envelope("Engagement Updated", SAMPLES["Engagement Updated"], "e4")),
        parse_event(
            envelope("Opportunity Created", {"catalog": "AWS", "opportunity": {"identifier": "O8"}}, "e5")
        ),
    ]
    work = plan_events(events, "AWS")
    assert [e.event_id for e in work.events] == ["e1", "e2", "e3", "e4", "e5"]
    assert work.opportunity_ids == [OPP, "O8"]
    assert work.invitations is True
    assert work.engagement_ids == [ENG]
    assert work.events[1].ignored
    assert "catalog" in str(work.events[1].reason)
    # Ids another run processed stay listed (audited as duplicates) but are not planned.
    again = plan_events(events, "AWS", skip_ids=["e1", "e3", "e4"])
    assert (again.opportunity_ids, again.invitations, again.engagement_ids) == (["O8"], False, [])
    assert work.to_dict()["events"][0]["event_id"] == "e1"


def test_run_conf_shapes() -> None:
    one = envelope("Opportunity Updated", SAMPLES["Opportunity Updated"])
    assert events_from_conf({"event": one}) == [one]
    assert events_from_conf({"events": [one, one]}) == [one, one]
    assert events_from_conf({"event": None, "events": None}) == []
    assert events_from_conf(None) == []


def test_events_the_emulator_emits_all_parse(pc_emulator) -> None:
    """The emulator's events (its shapes follow AWS's samples) each name a record to sync."""
    url = pc_emulator.url
    requests.post(f"{url}/_emulator/seed", json={"opportunities": 2, "seed": 3, "catalog": "AWS"}, timeout=30)
    referral = requests.post(f"{url}/_emulator/simulate/aws-referral", json={"catalog": "AWS"}, timeout=30)
    referral.raise_for_status()
    events = requests.get(f"{url}/_emulator/events", timeout=30).json()["events"]
    assert events, "the emulator emitted no event"
    for raw in events:
        parsed = parse_event(raw)
        assert not parsed.ignored, (raw["detail-type"], parsed.reason)
    assert {"Engagement Invitation Created"} <= {e["detail-type"] for e in events}


@pytest.fixture
def ledger(aws_endpoint):
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    ensure_storage(s3, ddb, "cosell-test", "cosell-audit", "cosell-state")
    clock = {"now": 1_000_000.0}
    return EventLedger(ddb, "cosell-state", claim_seconds=60, clock=lambda: clock["now"]), clock


def test_ledger_syncs_each_event_once_across_runs(ledger) -> None:
    events, clock = ledger
    assert events.claim(["e1", "e2"], "run-a") == (["e1", "e2"], [])
    # Another delivery of e1 (the SQS path, a run started by hand) while run-a works on it: a duplicate.
    assert events.claim(["e1", "e3"], "run-b") == (["e3"], ["e1"])
    # run-a's retried prepare claims its own events again.
    assert events.claim(["e1"], "run-a") == (["e1"], [])
    assert events.done(["e1", "e2"], "run-a") == 2
    assert events.status("e1") == {"status": "done", "owner": "run-a"}
    # Done is final, even long after.
    clock["now"] += 3600
    assert events.claim(["e1"], "run-c") == ([], ["e1"])
    # run-b died holding e3: once its claim expires, a later delivery takes it over.
    assert events.claim(["e3"], "run-c") == (["e3"], [])
    assert events.done(["e3"], "run-b") == 0  # the dead run cannot mark what it no longer holds


def test_audit_entries_one_per_event_with_distinct_keys() -> None:
    run = {
        "run_id": "eb-e1",
        "catalog": "AWS",
        "started_at": "2026-12-06T09:00:01.000000Z",
        "dag_id": "cosell_events",
    }
    events = [
        parse_event(envelope("Opportunity Updated", SAMPLES["Opportunity Updated"], "e1")),
        parse_event(envelope("Opportunity Updated", SAMPLES["Opportunity Updated"], "e2")),
        parse_event(envelope("Opportunity Teleported", {}, "e3")),
        parse_event({"detail-type": "Opportunity Updated"}),
    ]
    entries = event_audit_entries(run, events, duplicates=["e2"])
    assert [e.action for e in entries] == [
        "EVENT_PROCESSED",
        "EVENT_DUPLICATE",
        "EVENT_IGNORED",
        "EVENT_IGNORED",
    ]
    assert len({e.sk for e in entries}) == 4
    assert {e.pk for e in entries} == {"events#AWS"}
    assert entries[0].metadata["opportunityIds"] == [OPP]
    assert entries[2].metadata["reason"] == "unknown detail-type"
    assert entries[0].run_timestamp == datetime(2026, 12, 6, 9, 0, 1, tzinfo=UTC)
