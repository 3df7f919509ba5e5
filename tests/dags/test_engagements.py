"""Engagements and the AWS view on the deal, as a seller meets them (``dag.test()`` against the emulators).

An accepted AWS referral's opportunity belongs to the referral's engagement: its deal shows the engagement
(id, status, member companies, contexts) and AWS's summary; a member joining becomes a note; the context
goes both ways; a run with nothing changed reads no engagement and writes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.hubspot_reads import deal_notes

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

HEADERS = {"Authorization": "Bearer test-token"}
PROPS = [
    "aws_engagement_id",
    "aws_engagement_status",
    "aws_engagement_team",
    "aws_engagement_kickoff_date",
    "aws_engagement_close_date",
    "aws_engagement_context",
    "aws_last_engagement_sync",
    "aws_aws_stage",
    "aws_involvement_type",
    "aws_aws_team",
    "aws_aws_next_steps",
    "aws_next_best_actions",
]


def _accepted_referral(stack: Any) -> tuple[str, str, str]:
    """(opportunity id, deal id, engagement id) of an AWS referral accepted in HubSpot and linked."""
    made = stack.pc_control("simulate/aws-referral", {"catalog": "AWS"})
    inv, eid = str(made["invitation_id"]), str(made["engagement_id"])
    stack.run()
    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/deals/search",
        headers=HEADERS,
        json={
            "filterGroups": [
                {"filters": [{"propertyName": "aws_invitation_id", "operator": "EQ", "value": inv}]}
            ],
            "limit": 1,
        },
        timeout=30,
    )
    deal_id = str(r.json()["results"][0]["id"])
    stack.update_deal(deal_id, {"aws_invitation_action": "Accept"})
    stack.run()
    oid = _deal_props(stack, deal_id, ["aws_opportunity_id"])["aws_opportunity_id"]
    assert oid
    return str(oid), deal_id, eid


def _deal_props(stack: Any, deal_id: str, props: list[str] | None = None) -> dict[str, Any]:
    r = requests.get(
        f"{stack.hs_url}/crm/v3/objects/deals/{deal_id}",
        headers=HEADERS,
        params={"properties": ",".join(props or PROPS)},
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["properties"]


def _notes(stack: Any, deal_id: str) -> list[str]:
    return deal_notes(stack.hs_url, deal_id)


def _engagement_notes(stack: Any, deal_id: str, text: str) -> list[str]:
    return [n for n in _notes(stack, deal_id) if "AWS engagement" in n and text in n]


def _context(stack: Any, eid: str) -> dict[str, Any]:
    eng = stack.pc.get_engagement(Catalog="AWS", Identifier=eid)
    ctx = next(c for c in eng["Contexts"] if c["Type"] == "CustomerProject")
    return ctx


def test_the_deal_shows_the_engagement_and_a_new_member_becomes_a_note(sync_stack: Any) -> None:
    _oid, deal_id, eid = _accepted_referral(sync_stack)
    deal = _deal_props(sync_stack, deal_id)
    assert deal["aws_engagement_id"] == eid
    assert deal["aws_engagement_status"] == "Active"
    assert "Amazon Web Services" in deal["aws_engagement_team"]
    assert "[CustomerProject 1]" in deal["aws_engagement_context"]
    assert "Project.Title: " in deal["aws_engagement_context"]
    assert deal["aws_engagement_kickoff_date"]
    assert deal["aws_engagement_close_date"]
    assert deal["aws_involvement_type"] == "Co-Sell"
    assert "@" in deal["aws_aws_team"]
    assert len(_engagement_notes(sync_stack, deal_id, "AWS engagement started")) == 1

    sync_stack.pc_control(
        "simulate/engagement-member",
        {
            "engagement_id": eid,
            "member": {"CompanyName": "Globex Consulting", "WebsiteUrl": "https://globex.example"},
        },
    )
    sync_stack.run()
    assert "Globex Consulting" in _deal_props(sync_stack, deal_id)["aws_engagement_team"]
    assert len(_engagement_notes(sync_stack, deal_id, "Globex Consulting joined the engagement team")) == 1
    sync_stack.run()
    sync_stack.run(conf={"mode": "full"})
    assert len(_engagement_notes(sync_stack, deal_id, "joined the engagement team")) == 1, "never twice"
    assert len(_engagement_notes(sync_stack, deal_id, "AWS engagement started")) == 1


def test_an_aws_summary_change_reaches_the_deal(sync_stack: Any) -> None:
    oid, deal_id, _ = _accepted_referral(sync_stack)
    # AWS's summary changes do not move the opportunity's LastModifiedDate (docs/api-rules.md): an
    # incremental run does not see it, the periodic full re-read (here: a full run) does.
    sync_stack.pc_control(
        "simulate/aws-summary",
        {
            "opportunity_id": oid,
            "LifeCycle": {"Stage": "Qualify", "NextSteps": "Architecture review on Monday"},
        },
    )
    sync_stack.run()
    assert _deal_props(sync_stack, deal_id)["aws_aws_next_steps"] != "Architecture review on Monday"
    sync_stack.run(conf={"mode": "full"})
    deal = _deal_props(sync_stack, deal_id)
    assert deal["aws_aws_stage"] == "Qualify"
    assert deal["aws_aws_next_steps"] == "Architecture review on Monday"
    # An edit of the partner's record that moves neither its stage nor its review status says nothing
    # about AWS's side: no summary read.
    sync_stack.pc_control(
        "simulate/aws-summary",
        {
            "opportunity_id": oid,
            "LifeCycle": {"Stage": "Seller Engaged"},
            "InvolvementType": "For Visibility Only",
        },
    )
    sync_stack.pc_control(
        "simulate/aws-update", {"identifier": oid, "LifeCycle": {"NextSteps": "Call the CTO"}}
    )
    sync_stack.reset_calls()
    sync_stack.run()
    assert sync_stack.calls()[0]["by_operation"].get("GetAwsOpportunitySummary", 0) == 0
    assert _deal_props(sync_stack, deal_id)["aws_aws_stage"] == "Qualify"
    # When its stage moves, the next incremental run reads its summary.
    stage = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)["LifeCycle"]["Stage"]
    moved = "Qualified" if stage != "Qualified" else "Technical Validation"
    sync_stack.pc_control("simulate/aws-update", {"identifier": oid, "LifeCycle": {"Stage": moved}})
    sync_stack.reset_calls()
    sync_stack.run()
    assert sync_stack.calls()[0]["by_operation"].get("GetAwsOpportunitySummary", 0) == 1
    deal = _deal_props(sync_stack, deal_id)
    assert deal["aws_aws_stage"] == "Seller Engaged"
    assert deal["aws_involvement_type"] == "For Visibility Only"


def test_the_context_goes_both_ways_and_a_newer_aws_edit_wins(sync_stack: Any) -> None:
    oid, deal_id, eid = _accepted_referral(sync_stack)
    text = _deal_props(sync_stack, deal_id)["aws_engagement_context"]
    lines = text.split("\n")
    edited = [
        "Project.Title: Data platform modernisation (phase 1)" if line.startswith("Project.Title:") else line
        for line in lines
    ]
    sync_stack.update_deal(deal_id, {"aws_engagement_context": "\n".join(edited)})
    sync_stack.run()
    ctx = _context(sync_stack, eid)
    assert ctx["Payload"]["CustomerProject"]["Project"]["Title"] == "Data platform modernisation (phase 1)"
    entries = [e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_ENGAGEMENT_CONTEXT"]
    # Our own write moved ModifiedAt; the step stored the new value, so the next run does not read it again.
    sync_stack.reset_calls()
    sync_stack.run()
    ops = sync_stack.calls()[0]["by_operation"]
    assert ops.get("GetEngagement", 0) == 0
    assert ops.get("UpdateEngagementContext", 0) == 0
    assert entries
    assert entries[0]["success"] is True

    # AWS edits the business problem: it reaches the deal.
    payload = ctx["Payload"]["CustomerProject"]
    payload["Project"]["BusinessProblem"] = "Consolidate three data warehouses before the licence renewal."
    sync_stack.pc_control(
        "simulate/engagement-update",
        {
            "engagement_id": eid,
            "Contexts": [
                {"Id": ctx["Id"], "Type": "CustomerProject", "Payload": {"CustomerProject": payload}}
            ],
        },
    )
    sync_stack.run()
    shown = _deal_props(sync_stack, deal_id)["aws_engagement_context"]
    assert "Project.BusinessProblem: Consolidate three data warehouses before the licence renewal." in shown
    assert "Project.Title: Data platform modernisation (phase 1)" in shown

    # Both edit the title: AWS's newer edit is kept, the seller's is not sent, and the deal says so.
    payload["Project"]["Title"] = "Title set by AWS"
    sync_stack.pc_control(
        "simulate/engagement-update",
        {
            "engagement_id": eid,
            "Contexts": [
                {"Id": ctx["Id"], "Type": "CustomerProject", "Payload": {"CustomerProject": payload}}
            ],
        },
    )
    mine = shown.replace(
        "Project.Title: Data platform modernisation (phase 1)", "Project.Title: Title set in HubSpot"
    )
    sync_stack.update_deal(deal_id, {"aws_engagement_context": mine})
    sync_stack.reset_calls()
    sync_stack.run()
    assert _context(sync_stack, eid)["Payload"]["CustomerProject"]["Project"]["Title"] == "Title set by AWS"
    assert "Project.Title: Title set by AWS" in _deal_props(sync_stack, deal_id)["aws_engagement_context"]
    assert sync_stack.calls()[0]["by_operation"].get("UpdateEngagementContext", 0) == 0
    assert _engagement_notes(sync_stack, deal_id, "AWS changed it meanwhile")


def test_a_run_with_nothing_changed_reads_no_engagement_and_writes_nothing(sync_stack: Any) -> None:
    _oid, _deal_id, _eid = _accepted_referral(sync_stack)
    sync_stack.run()  # the deal changed by the last run's writes is read once more, and found unchanged
    sync_stack.reset_calls()
    report = sync_stack.report(sync_stack.run())
    pc_calls, hs_calls = sync_stack.calls()
    ops = pc_calls["by_operation"]
    for op in (
        "GetEngagement",
        "ListEngagementMembers",
        "GetAwsOpportunitySummary",
        "UpdateEngagementContext",
    ):
        assert ops.get(op, 0) == 0, (op, ops)
    # One search for engagements modified since the last check, however many the book has.
    assert ops.get("SearchEngagements", 0) == 1
    assert ops.get("ListEngagements", 0) == 0
    writes = [
        e
        for e in hs_calls["by_endpoint"]
        if e.startswith(("PATCH", "PUT")) or "batch/update" in e or "batch/create" in e
    ]
    assert writes == []
    assert report["engagements"]["deals_written"] == 0
    assert report["api_calls"].get("SearchEngagements") == 1


def test_without_search_every_known_engagement_is_listed_and_a_member_change_still_arrives(
    sync_stack: Any, monkeypatch: Any
) -> None:
    from cosell_hooks.partner_central import PartnerCentralHook
    from cosell_sync.errors import AuthError

    _oid, deal_id, eid = _accepted_referral(sync_stack)
    real_call = PartnerCentralHook.call

    def no_search(self: Any, operation: str, **kwargs: Any) -> Any:
        if operation == "search_engagements":
            raise AuthError("not permitted", service="partner_central", code="AccessDeniedException")
        return real_call(self, operation, **kwargs)

    monkeypatch.setattr(PartnerCentralHook, "call", no_search)
    sync_stack.pc_control(
        "simulate/engagement-member",
        {
            "engagement_id": eid,
            "member": {"CompanyName": "Initech Partners", "WebsiteUrl": "https://initech.example"},
        },
    )
    sync_stack.reset_calls()
    sync_stack.run()
    ops = sync_stack.calls()[0]["by_operation"]
    assert ops.get("ListEngagements", 0) == 1
    assert "Initech Partners" in _deal_props(sync_stack, deal_id)["aws_engagement_team"]
    assert len(_engagement_notes(sync_stack, deal_id, "Initech Partners joined the engagement team")) == 1


def test_aws_side_edits_that_move_no_stage_read_no_aws_summary(sync_stack: Any) -> None:
    """Edits of records AWS already sees (no engagement yet) cost a GetOpportunity each, no summary read."""
    from tests.dags.scenarios import synced_book, with_status

    ids = synced_book(sync_stack, opportunities=12)
    seen = with_status(sync_stack, ids, "Approved", "Submitted", "In review", "Action Required", "Rejected")
    assert seen, "the seeded book has no opportunity AWS has seen"
    sync_stack.run()  # settles the initial load's own writes
    for n, oid in enumerate(seen):
        sync_stack.pc_control(
            "simulate/aws-update", {"identifier": oid, "LifeCycle": {"NextSteps": f"step {n}"}}
        )
    sync_stack.reset_calls()
    sync_stack.run()
    ops = sync_stack.calls()[0]["by_operation"]
    assert ops.get("GetOpportunity", 0) == len(seen)
    assert ops.get("GetAwsOpportunitySummary", 0) == 0, ops
