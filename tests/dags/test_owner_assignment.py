"""Deal owners to Partner Central as a seller and an ops user meet them (dag.test() on the emulators).

A deal owner change reaches Partner Central (``AssignOpportunity``) with the assignee on the deal and a note;
a re-run assigns nothing; an owner with a malformed e-mail is that deal's clear error while another deal
of the same run is assigned; ``cosell_assign`` does the same for one record from the trigger form, dry run
first.
"""

from __future__ import annotations

from typing import Any

import pytest
from scenarios import synced_book

from tests.hubspot_reads import deal_notes

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

HEADERS = {"Authorization": "Bearer test-token"}
PROPS = ["hubspot_owner_id", "aws_assigned_partner_user", "aws_sync_error", "aws_opportunity_id"]


def _deal(stack: Any, oid: str) -> dict[str, Any]:
    return stack.deal_by_opportunity(oid, PROPS)


def _notes(stack: Any, deal_id: str, text: str) -> list[str]:
    return deal_notes(stack.hs_url, deal_id, text)


def _owner_of(stack: Any, oid: str) -> list[dict[str, Any]]:
    return stack.pc.get_opportunity(Catalog="AWS", Identifier=oid).get("OpportunityTeam") or []


def _assign_entries(stack: Any, oid: str) -> list[dict[str, Any]]:
    return [e for e in stack.audit(oid) if e["action"] == "ASSIGN_OPPORTUNITY"]


def test_an_owner_change_reaches_partner_central_once_and_a_bad_email_fails_only_its_deal(
    sync_stack: Any,
) -> None:
    good_oid, bad_oid, other_oid = synced_book(sync_stack, 3)
    ana = sync_stack.hs_control(
        "owners", {"firstName": "Ana", "lastName": "Lima", "email": "Ana.Lima@Partner.example"}
    )
    broken = sync_stack.hs_control(
        "owners", {"firstName": "Bo", "lastName": "Broken", "email": "bo at partner"}
    )
    good_deal, bad_deal = _deal(sync_stack, good_oid)["id"], _deal(sync_stack, bad_oid)["id"]
    untouched = _owner_of(sync_stack, other_oid)
    sync_stack.update_deal(good_deal, {"hubspot_owner_id": ana["id"]})
    sync_stack.update_deal(bad_deal, {"hubspot_owner_id": broken["id"]})
    sync_stack.reset_calls()

    run = sync_stack.run()

    # The good deal: Partner Central has the new owner, the deal says so, once.
    team = _owner_of(sync_stack, good_oid)
    assert [(m["Email"], m["FirstName"], m["LastName"], m["BusinessTitle"]) for m in team] == [
        ("ana.lima@partner.example", "Ana", "Lima", "PartnerAccountManager")
    ]
    good = _deal(sync_stack, good_oid)["properties"]
    assert good["aws_assigned_partner_user"] == "ana.lima@partner.example"
    assert len(_notes(sync_stack, good_deal, "Opportunity reassigned to Ana Lima")) == 1
    [entry] = _assign_entries(sync_stack, good_oid)
    assert entry["success"] is True
    assert entry["changes"]["hubspot_owner_id"]["new"] == ana["id"]
    # The bad deal: a clear error naming the field and the rule, never the address; queued for retry.
    bad = _deal(sync_stack, bad_oid)["properties"]
    assert "owner email: malformed" in bad["aws_sync_error"]
    assert "bo at partner" not in bad["aws_sync_error"]
    assert not bad.get("aws_assigned_partner_user")
    [failed] = _assign_entries(sync_stack, bad_oid)
    assert failed["success"] is False
    [queued] = [i for i in sync_stack.retry_items() if i.get("opportunity_id") == bad_oid]
    assert queued["reason"] == "ASSIGN_FAILED"
    # Untouched deals are not assigned; one AssignOpportunity in all, owners read once.
    assert _owner_of(sync_stack, other_oid) == untouched
    pc_calls, hs_calls = sync_stack.calls()
    assert pc_calls["by_operation"].get("AssignOpportunity") == 1
    assert hs_calls["by_endpoint"].get("GET /crm/v3/owners") == 1
    assert sync_stack.report(run)["api_calls"]["AssignOpportunity"] == 1

    # A re-run assigns nothing and writes no second note; the bad deal is tried again and fails again
    # without calling Partner Central (its address is still malformed).
    sync_stack.reset_calls()
    sync_stack.run()
    pc_calls, _ = sync_stack.calls()
    assert "AssignOpportunity" not in pc_calls["by_operation"]
    assert len(_notes(sync_stack, good_deal, "Opportunity reassigned to")) == 1
    assert "owner email: malformed" in _deal(sync_stack, bad_oid)["properties"]["aws_sync_error"]

    # cosell_assign: a dry run (the default) shows the change and writes nothing ...
    sync_stack.reset_calls()
    sync_stack.run(
        "cosell_assign", conf={"opportunity_id": bad_oid, "assignee_email": "ANA.LIMA@partner.example"}
    )
    pc_calls, _ = sync_stack.calls()
    assert "AssignOpportunity" not in pc_calls["by_operation"]
    assert not _deal(sync_stack, bad_oid)["properties"].get("aws_assigned_partner_user")
    # ... and with dry_run off assigns, audits, sets the property and adds the note.
    sync_stack.run(
        "cosell_assign",
        conf={"deal_id": bad_deal, "assignee_email": "ana.lima@partner.example", "dry_run": False},
    )
    assert [m["Email"] for m in _owner_of(sync_stack, bad_oid)] == ["ana.lima@partner.example"]
    assert _deal(sync_stack, bad_oid)["properties"]["aws_assigned_partner_user"] == "ana.lima@partner.example"
    assert len(_notes(sync_stack, bad_deal, "Opportunity reassigned to Ana Lima")) == 1
    assert [e["success"] for e in _assign_entries(sync_stack, bad_oid)].count(True) == 1
