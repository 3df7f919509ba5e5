"""``cosell_events``: Partner Central events, as the API destination delivers them, drive the reconcile steps.

``dag.test()`` against the emulators: the event is the one the Partner Central emulator emitted for a
console edit, posted in the run conf the way the EventBridge input transformer shapes it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
from scenarios import set_pc, synced_book

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

HEADERS = {"Authorization": "Bearer test-token"}
TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "cloudformation" / "cosell-events.yaml"


def _emitted(stack: Any, detail_type: str) -> list[dict[str, Any]]:
    r = requests.get(f"{stack.pc_url}/_emulator/events", params={"detail-type": detail_type}, timeout=30)
    r.raise_for_status()
    return r.json()["events"]


def _event_audit(stack: Any, event_id: str) -> list[str]:
    return [
        e["action"] for e in stack.audit("events#AWS") if (e.get("metadata") or {}).get("eventId") == event_id
    ]


def test_partner_central_events_update_hubspot_once(sync_stack: Any, tmp_path: Any, monkeypatch: Any) -> None:
    oid = synced_book(sync_stack, 3)[0]
    requests.delete(f"{sync_stack.pc_url}/_emulator/events", timeout=30)

    # 1. A console edit in Partner Central; its "Opportunity Updated" event reaches cosell_events.
    set_pc(sync_stack, oid, {"next_steps": "AWS booked the workshop"})
    [event] = [
        e
        for e in _emitted(sync_stack, "Opportunity Updated")
        if e["detail"]["opportunity"]["identifier"] == oid
    ]
    sync_stack.reset_calls()
    started = time.monotonic()
    sync_stack.run("cosell_events", conf={"event": event})
    # Not asserted (no wall-time asserts): dag.test's own overhead dominates; see the README.
    print(f"event-to-update (dag.test, in process): {time.monotonic() - started:.1f}s")
    assert sync_stack.deal_by_opportunity(oid)["properties"]["aws_next_steps"] == "AWS booked the workshop"
    pc_calls, _ = sync_stack.calls()
    # Only the named record was read: no listing of the book.
    assert pc_calls["by_operation"].get("GetOpportunity") == 1
    assert "ListOpportunities" not in pc_calls["by_operation"]
    assert _event_audit(sync_stack, event["id"]) == ["EVENT_PROCESSED"]
    assert [e["action"] for e in sync_stack.audit(oid) if e["action"] == "UPDATE_DEAL"]

    # 2. The same event again (another delivery path): audited as a duplicate, nothing read or written.
    sync_stack.reset_calls()
    sync_stack.run("cosell_events", conf={"event": event})
    pc_calls, hs_calls = sync_stack.calls()
    assert "GetOpportunity" not in pc_calls["by_operation"]
    assert not [k for k in pc_calls["by_operation"] if not k.startswith(("Get", "List", "Search"))]
    assert not [k for k in hs_calls["by_endpoint"] if not k.startswith("GET") and "/read" not in k]
    assert sorted(_event_audit(sync_stack, event["id"])) == ["EVENT_DUPLICATE", "EVENT_PROCESSED"]

    # 3. An unknown detail-type and a malformed event are audited, not errors; an AWS referral's
    # "Engagement Invitation Created" in the same batch runs the invitation step: the referral becomes a deal;
    # an engagement event runs the engagement step.
    made = sync_stack.pc_control("simulate/aws-referral", {"catalog": "AWS"})
    [invitation] = [
        e
        for e in _emitted(sync_stack, "Engagement Invitation Created")
        if e["detail"]["engagementInvitation"]["id"] == made["invitation_id"]
    ]
    # "Engagement Updated" of the referral's engagement, developer guide shape (the emulator, like AWS,
    # notifies only members, and we are not one before accepting): the engagement step runs for it.
    member = {
        **invitation,
        "id": "engagement-updated-1",
        "detail-type": "Engagement Updated",
        "detail": {"catalog": "AWS", "engagement": {"engagementId": made["engagement_id"]}},
    }
    unknown = {**event, "id": "unknown-1", "detail-type": "Opportunity Teleported"}
    malformed = {
        **event,
        "id": "malformed-1",
        "detail": {"catalog": "AWS", "opportunity": {"identifier": "x"}},
    }
    sync_stack.run("cosell_events", conf={"events": [unknown, malformed, invitation, member]})
    assert _event_audit(sync_stack, "unknown-1") == ["EVENT_IGNORED"]
    assert _event_audit(sync_stack, "malformed-1") == ["EVENT_IGNORED"]
    assert _event_audit(sync_stack, invitation["id"]) == ["EVENT_PROCESSED"]
    assert _event_audit(sync_stack, member["id"]) == ["EVENT_PROCESSED"]
    r = requests.post(
        f"{sync_stack.hs_url}/crm/v3/objects/deals/batch/read",
        headers=HEADERS,
        timeout=30,
        json={"idProperty": "aws_invitation_id", "inputs": [{"id": made["invitation_id"]}], "properties": []},
    )
    r.raise_for_status()
    assert len(r.json()["results"]) == 1

    # 4. Through Airflow's REST API as the API destination posts it: a JWT from /auth/token (the OAuth
    # client-credentials call EventBridge makes), the run created from the template's body, and the same
    # event delivered again refused with 409 (no second run).
    _api_destination_posts(sync_stack, {**event, "id": f"{event['id']}-api"}, tmp_path, monkeypatch)


def _api_destination_posts(stack: Any, event: dict[str, Any], tmp_path: Any, monkeypatch: Any) -> None:
    import json

    from api_helpers import dag_run
    from cfnlint.decode import cfn_yaml
    from fastapi.testclient import TestClient

    from cosell_sync.events import render_input_transformer

    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"eventbridge": "not-a-real-secret-1"}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "eventbridge:user")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    from airflow.api_fastapi.app import create_app

    client = TestClient(create_app("core"))
    # EventBridge's OAuth client-credentials request: the ClientID/ClientSecret as HTTP Basic auth (ignored
    # by Airflow) and the connection's body parameters, form-encoded.
    got = client.post(
        "/auth/token",
        data={"username": "eventbridge", "password": "not-a-real-secret-1"},
        auth=("eventbridge", "not-a-real-secret-1"),
    )
    assert got.status_code == 201, got.text
    jwt = got.json()["access_token"]
    refused = client.post("/auth/token", data={"username": "eventbridge", "password": "wrong-password"})
    assert refused.status_code == 401

    rule = cfn_yaml.load(str(TEMPLATE))["Resources"]["PartnerCentralRule"]["Properties"]
    [target] = [t for t in rule["Targets"] if t.get("Id") == "AirflowCosellEvents"]
    body = render_input_transformer(target["InputTransformer"], event)
    headers = {"Authorization": f"Bearer {jwt}", "Content-Type": "application/json"}
    first = client.post("/api/v2/dags/cosell_events/dagRuns", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["dag_run_id"] == f"eb-{event['id']}"
    again = client.post("/api/v2/dags/cosell_events/dagRuns", content=body, headers=headers)
    assert again.status_code == 409, again.text
    assert dag_run("cosell_events", f"eb-{event['id']}").conf == {"event": event}
    assert client.post("/api/v2/dags/cosell_events/dagRuns", content=body).status_code == 401
