"""AWS referrals in HubSpot, as a seller meets them (``dag.test()`` against the emulators).

A referral (an engagement invitation addressed to us) becomes a deal once; the seller accepts or rejects
it on the deal; an accepted referral's opportunity is linked to the same deal; an expired one closes its
deal; a run that dies between the accept call and the link is finished by the next run, accepting once.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.dags.scenarios import hubspot_total

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

HEADERS = {"Authorization": "Bearer test-token"}
PROPS = [
    "dealname",
    "dealstage",
    "closed_lost_reason",
    "aws_invitation_id",
    "aws_invitation_status",
    "aws_invitation_expires_at",
    "aws_invitation_sender",
    "aws_opportunity_id",
    "aws_sync_error",
    "aws_sync_enabled",
]


def _referral(stack: Any) -> str:
    return str(stack.pc_control("simulate/aws-referral", {"catalog": "AWS"})["invitation_id"])


def _deals_for(stack: Any, invitation_id: str) -> list[dict[str, Any]]:
    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/deals/search",
        headers=HEADERS,
        json={
            "filterGroups": [
                {"filters": [{"propertyName": "aws_invitation_id", "operator": "EQ", "value": invitation_id}]}
            ],
            "properties": PROPS,
            "limit": 10,
        },
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["results"]


def _deal(stack: Any, invitation_id: str) -> dict[str, Any]:
    deals = _deals_for(stack, invitation_id)
    assert len(deals) == 1, f"expected one deal for {invitation_id}, got {len(deals)}"
    return deals[0]


def _invitation(stack: Any, invitation_id: str) -> dict[str, Any]:
    return stack.pc.get_engagement_invitation(Catalog="AWS", Identifier=invitation_id)


def _calls(stack: Any) -> dict[str, int]:
    return stack.calls()[0]["by_operation"]


def test_a_referral_becomes_one_deal_with_a_task(sync_stack: Any) -> None:
    inv = _referral(sync_stack)
    sync_stack.run()
    deal = _deal(sync_stack, inv)["properties"]
    assert deal["aws_invitation_status"] == "PENDING"
    assert deal["aws_invitation_expires_at"]
    assert deal["aws_invitation_sender"]
    assert deal["dealname"]
    sync_stack.run()
    deal_id = _deal(sync_stack, inv)["id"]  # still exactly one
    r = requests.get(
        f"{sync_stack.hs_url}/crm/v4/objects/deals/{deal_id}/associations/tasks", headers=HEADERS, timeout=30
    )
    assert len(r.json()["results"]) == 1, "one task for the owner, not one per run"


def test_accept_in_hubspot_links_the_new_opportunity_to_the_same_deal(sync_stack: Any) -> None:
    inv = _referral(sync_stack)
    sync_stack.run()
    deal_id = _deal(sync_stack, inv)["id"]
    sync_stack.update_deal(deal_id, {"aws_invitation_action": "Accept"})
    sync_stack.run()
    deal = _deal(sync_stack, inv)
    assert deal["id"] == deal_id
    oid = deal["properties"]["aws_opportunity_id"]
    assert oid
    assert oid.startswith("O")
    assert deal["properties"]["aws_invitation_status"] == "ACCEPTED"
    assert _invitation(sync_stack, inv)["Status"] == "ACCEPTED"
    # The opportunity syncs like any other from now on: its deal is the referral's deal, not a new one.
    sync_stack.run()
    assert sync_stack.deal_by_opportunity(oid)["id"] == deal_id
    assert len(_deals_for(sync_stack, inv)) == 1


def test_reject_with_a_reason_closes_the_deal(sync_stack: Any) -> None:
    inv = _referral(sync_stack)
    sync_stack.run()
    deal_id = _deal(sync_stack, inv)["id"]
    sync_stack.update_deal(
        deal_id, {"aws_invitation_action": "Reject", "aws_rejection_reason": "Customer is out of our region"}
    )
    sync_stack.run()
    assert _invitation(sync_stack, inv)["Status"] == "REJECTED"
    deal = _deal(sync_stack, inv)["properties"]
    assert deal["dealstage"] == "closedlost"
    assert deal["aws_invitation_status"] == "REJECTED"
    sync_stack.reset_calls()
    sync_stack.run()
    assert _calls(sync_stack).get("RejectEngagementInvitation", 0) == 0


def test_an_expired_referral_closes_its_deal(sync_stack: Any) -> None:
    inv = _referral(sync_stack)
    sync_stack.run()
    sync_stack.pc_control("clock", {"advance_seconds": 16 * 86400})
    sync_stack.run()
    deal = _deal(sync_stack, inv)["properties"]
    assert deal["aws_invitation_status"] == "EXPIRED"
    assert deal["dealstage"] == "closedlost"
    assert "expired" in (deal.get("closed_lost_reason") or "").lower()


def test_crash_between_accept_and_link_then_rerun_accepts_once(sync_stack: Any, monkeypatch: Any) -> None:
    from cosell_sync import invitations

    inv = _referral(sync_stack)
    sync_stack.run()
    deal_id = _deal(sync_stack, inv)["id"]
    sync_stack.update_deal(deal_id, {"aws_invitation_action": "Accept"})
    with pytest.MonkeyPatch.context() as mp:

        def die(*_a: Any, **_k: Any) -> Any:
            raise SystemExit("worker killed after the accept call, before the link")

        mp.setattr(invitations, "finish_invitations", die)
        sync_stack.run(expect="failed")
    assert _invitation(sync_stack, inv)["Status"] == "ACCEPTED"
    assert not _deal(sync_stack, inv)["properties"].get("aws_opportunity_id")
    sync_stack.run()
    deal = _deal(sync_stack, inv)
    assert deal["id"] == deal_id
    assert deal["properties"]["aws_opportunity_id"]
    tasks = sync_stack.pc.list_engagement_by_accepting_invitation_tasks(
        Catalog="AWS", EngagementInvitationIdentifier=[inv]
    )["TaskSummaries"]
    assert len(tasks) == 1, "the invitation was accepted once"


def test_cosell_invitation_accepts_from_the_airflow_ui(sync_stack: Any) -> None:
    """The manual DAG: the deal is made if needed, the decision recorded on it, the opportunity linked."""
    inv = _referral(sync_stack)
    sync_stack.run("cosell_invitation", conf={"invitation_id": inv, "action": "Accept"})
    deal = _deal(sync_stack, inv)["properties"]
    assert deal["aws_opportunity_id"]
    assert deal["aws_invitation_status"] == "ACCEPTED"
    # A scheduled run afterwards neither accepts again nor makes a second deal, and is not blocked.
    sync_stack.reset_calls()
    sync_stack.run()
    assert _calls(sync_stack).get("StartEngagementByAcceptingInvitationTask", 0) == 0
    assert len(_deals_for(sync_stack, inv)) == 1


def test_cosell_invitation_rejects_with_the_reason(sync_stack: Any) -> None:
    inv = _referral(sync_stack)
    sync_stack.run()
    sync_stack.run(
        "cosell_invitation",
        conf={"invitation_id": inv, "action": "Reject", "rejection_reason": "No capacity"},
    )
    assert _invitation(sync_stack, inv)["Status"] == "REJECTED"
    assert _deal(sync_stack, inv)["properties"]["dealstage"] == "closedlost"


def test_a_failed_accept_task_shows_its_reason_on_the_deal(sync_stack: Any) -> None:
    inv = _referral(sync_stack)
    sync_stack.run()
    deal_id = _deal(sync_stack, inv)["id"]
    sync_stack.pc_control("faults/accept-task", {"reason_code": "OpportunityValidationFailed", "times": 1})
    sync_stack.update_deal(deal_id, {"aws_invitation_action": "Accept"})
    sync_stack.run()
    deal = _deal(sync_stack, inv)["properties"]
    assert not deal.get("aws_opportunity_id")
    assert "OpportunityValidationFailed" in (deal.get("aws_sync_error") or "")
    r = requests.get(
        f"{sync_stack.hs_url}/crm/v4/objects/deals/{deal_id}/associations/tasks", headers=HEADERS, timeout=30
    )
    task_ids = [str(t["toObjectId"]) for t in r.json()["results"]]
    bodies = requests.post(
        f"{sync_stack.hs_url}/crm/v3/objects/tasks/batch/read",
        headers=HEADERS,
        json={"inputs": [{"id": t} for t in task_ids], "properties": ["hs_task_subject"]},
        timeout=30,
    ).json()["results"]
    assert any("failed" in (b["properties"].get("hs_task_subject") or "").lower() for b in bodies)


def test_a_lead_invitation_becomes_a_contact_not_a_deal(sync_stack: Any) -> None:
    inv = str(
        sync_stack.pc_control("simulate/aws-referral", {"catalog": "AWS", "kind": "lead"})["invitation_id"]
    )
    sync_stack.run()
    sync_stack.run()
    assert _deals_for(sync_stack, inv) == []
    r = requests.post(
        f"{sync_stack.hs_url}/crm/v3/objects/contacts/search",
        headers=HEADERS,
        json={
            "filterGroups": [
                {"filters": [{"propertyName": "aws_created_for", "operator": "EQ", "value": f"lead:{inv}"}]}
            ],
            "properties": ["jobtitle", "company"],
            "limit": 10,
        },
        timeout=30,
    )
    r.raise_for_status()
    contacts = r.json()["results"]
    assert len(contacts) == 1, "one contact per lead, however many runs"
    assert contacts[0]["properties"]["company"]


def test_the_owner_is_reminded_before_the_invitation_expires(sync_stack: Any, monkeypatch: Any) -> None:
    from datetime import datetime, timedelta

    from cosell_sync import invitations

    inv = _referral(sync_stack)
    sync_stack.run()
    deal_id = _deal(sync_stack, inv)["id"]

    class Later(datetime):
        """13 days on: 2 days of the invitation's 15 are left."""

        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) + timedelta(days=13)

    monkeypatch.setattr(invitations, "datetime", Later)
    sync_stack.run()
    sync_stack.run()
    r = requests.get(
        f"{sync_stack.hs_url}/crm/v4/objects/deals/{deal_id}/associations/tasks", headers=HEADERS, timeout=30
    )
    task_ids = [str(t["toObjectId"]) for t in r.json()["results"]]
    subjects = [
        t["properties"].get("hs_task_subject") or ""
        for t in requests.post(
            f"{sync_stack.hs_url}/crm/v3/objects/tasks/batch/read",
            headers=HEADERS,
            json={"inputs": [{"id": t} for t in task_ids], "properties": ["hs_task_subject"]},
            timeout=30,
        ).json()["results"]
    ]
    assert sum("expires soon" in s for s in subjects) == 1, subjects  # once, however many runs


def test_a_referral_for_a_customer_hubspot_has_gets_that_company(sync_stack: Any) -> None:
    inv = _referral(sync_stack)
    customer = _invitation(sync_stack, inv)["Payload"]["OpportunityInvitation"]["Customer"]
    host = customer["WebsiteUrl"].split("://", 1)[1].rstrip("/")
    # The portal holds the customer with the domain as a user typed it (with www.).
    r = requests.post(
        f"{sync_stack.hs_url}/crm/v3/objects/companies",
        headers=HEADERS,
        json={"properties": {"name": "Our customer (CRM record)", "domain": host}},
        timeout=30,
    )
    r.raise_for_status()
    existing = str(r.json()["id"])
    before = hubspot_total(sync_stack, "companies")

    sync_stack.run()

    deal_id = _deal(sync_stack, inv)["id"]
    url = f"{sync_stack.hs_url}/crm/v4/objects/deals/{deal_id}/associations/companies"
    r = requests.get(url, headers=HEADERS, timeout=30)
    assert [str(a["toObjectId"]) for a in r.json()["results"]] == [existing]
    assert hubspot_total(sync_stack, "companies") == before
