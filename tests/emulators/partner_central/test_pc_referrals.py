"""AWS referrals and the engagement lifecycle: lead and opportunity invitations, expiry on the emulator clock,
withdrawal, the asynchronous accept task (faults, idempotency, conflicts), members joining, AWS editing the
engagement and the AWS opportunity summary; each with the EventBridge events AWS documents for it."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from emulators.partner_central import shapes

HOUR = 3600


@pytest.fixture(autouse=True)
def _answers_match_the_model(pc: Any) -> Iterator[None]:
    """Every successful answer here (lead payloads, enrichment, AWS summaries) fits the output shape."""
    problems: list[tuple[str, Any]] = []

    def check(http_response: Any, model: Any, **_: Any) -> None:
        if http_response.status_code == 200:
            errors = shapes.output_errors(model.name, json.loads(http_response.content or b"{}"))
            if errors:
                problems.append((model.name, errors))

    pc.meta.events.register("after-call.partnercentral-selling", check)
    yield
    assert problems == []


def _events(ctl: Any, detail_type: str) -> list[dict[str, Any]]:
    """Recorded events of one detail-type, oldest first (GET /_emulator/events)."""
    return [e for e in ctl("events", method="GET")["events"] if e["detail-type"] == detail_type]


def _slow_tasks(ctl: Any) -> None:
    """Tasks finish only when the test moves the emulator clock (one hour), so IN_PROGRESS is observable."""
    ctl("config", {"task_delay_ms": HOUR * 1000})


def _finish_tasks(ctl: Any) -> None:
    ctl("clock", {"advance_seconds": HOUR + 1})


def _accept_task(pc: Any, task_id: str, catalog: str = "AWS") -> dict[str, Any]:
    tasks = pc.list_engagement_by_accepting_invitation_tasks(Catalog=catalog, TaskIdentifier=[task_id])
    return tasks["TaskSummaries"][0]


def _control_error(emu: Any, path: str, body: dict[str, Any]) -> str:
    """POST a control that must be refused; returns the error's ``__type`` ("bad request" otherwise).

    Controls answer 400 like the API does, with the AWS error body when the backend raised an AWS error.
    """
    response = requests.post(f"{emu.url}/_emulator/{path}", json=body, timeout=10)
    assert response.status_code == 400, response.text
    return response.json().get("__type", "bad request")


def _accepted_referral(pc: Any, ctl: Any, catalog: str = "AWS", **payload: Any) -> dict[str, Any]:
    """An AWS opportunity referral accepted through the task; returns the referral plus OpportunityId."""
    ref = ctl("simulate/aws-referral", {"catalog": catalog, "payload": payload})
    _slow_tasks(ctl)
    started = pc.start_engagement_by_accepting_invitation_task(
        Catalog=catalog, ClientToken=f"acc-{ref['invitation_id']}", Identifier=ref["invitation_id"]
    )
    _finish_tasks(ctl)
    done = _accept_task(pc, started["TaskId"], catalog)
    assert done["TaskStatus"] == "COMPLETE", done
    return {**ref, "opportunity_id": done["OpportunityId"], "task": done}


def test_lead_referral_is_a_lead_invitation_whose_acceptance_joins_the_lead_engagement(emu, pc, ctl):
    ref = ctl(
        "simulate/aws-referral",
        {
            "catalog": "AWS",
            "kind": "lead",
            "payload": {
                "Customer": {"CompanyName": "Lead Co", "MarketSegment": "Enterprise"},
                "Interaction": {"ContactBusinessTitle": "VP Engineering", "Usecase": "Data lake"},
                "LeadContact": {"Email": "pat@lead.example", "FirstName": "Pat", "LastName": "Lee"},
            },
        },
    )
    assert ref["payload_type"] == "LeadInvitation"
    leads = pc.list_engagement_invitations(
        Catalog="AWS", ParticipantType="RECEIVER", PayloadType=["LeadInvitation"]
    )["EngagementInvitationSummaries"]
    assert [i["Id"] for i in leads] == [ref["invitation_id"]]
    assert leads[0]["ParticipantType"] == "RECEIVER"
    inv = pc.get_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])
    lead = inv["Payload"]["LeadInvitation"]
    assert lead["Customer"]["CompanyName"] == "Lead Co"
    assert lead["Customer"]["MarketSegment"] == "Enterprise"
    assert lead["Customer"]["Industry"] == "Software and Internet"  # default kept where not overridden
    assert lead["Interaction"]["ContactBusinessTitle"] == "VP Engineering"
    assert inv["Receiver"]["Account"]["AwsAccountId"] == "123456789012"
    assert inv["EnrichmentContext"]["LeadInsights"]["LeadReadinessScore"] == "High"
    created = [e["detail"]["engagementInvitation"] for e in _events(ctl, "Engagement Invitation Created")]
    assert created[-1]["id"] == ref["invitation_id"]
    assert (created[-1]["payloadType"], created[-1]["participantType"]) == ("LeadInvitation", "Receiver")
    # ListEngagementMembers is for members only; we join by accepting.
    with pytest.raises(ClientError) as exc:
        pc.list_engagement_members(Catalog="AWS", Identifier=ref["engagement_id"])
    assert exc.value.response["Error"]["Code"] == "AccessDeniedException"

    _slow_tasks(ctl)
    started = pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="lead-1", Identifier=ref["invitation_id"]
    )
    _finish_tasks(ctl)
    done = _accept_task(pc, started["TaskId"])
    # A lead carries no AWS opportunity: the task completes without creating one.
    assert done["TaskStatus"] == "COMPLETE"
    assert "OpportunityId" not in done
    assert pc.list_opportunities(Catalog="AWS")["OpportunitySummaries"] == []
    eng = pc.get_engagement(Catalog="AWS", Identifier=ref["engagement_id"])
    interaction = eng["Contexts"][0]["Payload"]["Lead"]["Interactions"][0]
    assert eng["Contexts"][0]["Type"] == "Lead"
    assert interaction["Contact"]["Email"] == "pat@lead.example"
    assert interaction["Contact"]["BusinessTitle"] == "VP Engineering"
    members = pc.list_engagement_members(Catalog="AWS", Identifier=ref["engagement_id"])[
        "EngagementMemberList"
    ]
    assert {m["AccountId"] for m in members} == {"aws", "123456789012"}


def test_referral_kind_defaults_to_opportunity_and_bad_overrides_are_refused(emu, pc, ctl):
    ref = ctl("simulate/aws-referral", {"catalog": "Sandbox"})
    inv = pc.get_engagement_invitation(Catalog="Sandbox", Identifier=ref["invitation_id"])
    assert inv["PayloadType"] == "OpportunityInvitation"
    assert inv["Payload"]["OpportunityInvitation"]["Customer"]["CompanyName"] == "Example Corp"
    # Overrides must still be a valid invitation payload (and name real members).
    bad_country = {"payload": {"Customer": {"CountryCode": "Narnia"}}}
    assert _control_error(emu, "simulate/aws-referral", bad_country) == "ValidationException"
    assert _control_error(emu, "simulate/aws-referral", {"payload": {"Custmer": {}}}) == "ValidationException"
    assert _control_error(emu, "simulate/aws-referral", {"kind": "deal"}) == "bad request"
    summaries = pc.list_engagement_invitations(Catalog="AWS", ParticipantType="RECEIVER")
    assert summaries["EngagementInvitationSummaries"] == []


def test_invitation_expires_fifteen_days_after_it_was_sent_on_the_emulator_clock(pc, ctl):
    ref = ctl("simulate/aws-referral", {"catalog": "AWS"})
    inv = pc.get_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])
    assert inv["ExpirationDate"] - inv["InvitationDate"] == dt.timedelta(days=15)
    ctl("events", method="DELETE")
    ctl("clock", {"advance_seconds": 15 * 86400 - 60})
    assert pc.get_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])["Status"] == "PENDING"
    assert _events(ctl, "Engagement Invitation Expired") == []
    ctl("clock", {"advance_seconds": 61})
    expired = pc.list_engagement_invitations(Catalog="AWS", ParticipantType="RECEIVER", Status=["EXPIRED"])
    assert [i["Id"] for i in expired["EngagementInvitationSummaries"]] == [ref["invitation_id"]]
    events = _events(ctl, "Engagement Invitation Expired")
    assert [e["detail"]["engagementInvitation"]["id"] for e in events] == [ref["invitation_id"]]
    assert events[0]["detail"]["catalog"] == "AWS"
    assert events[0]["resources"] == [ref["invitation_arn"]]
    with pytest.raises(ClientError) as exc:
        pc.reject_engagement_invitation(
            Catalog="AWS", Identifier=ref["invitation_id"], RejectionReason="Other"
        )
    assert exc.value.response["Error"]["Code"] == "ConflictException"
    started = pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="late", Identifier=ref["invitation_id"]
    )
    _finish_tasks(ctl)
    done = _accept_task(pc, started["TaskId"])
    assert (done["TaskStatus"], done["ReasonCode"]) == ("FAILED", "InvitationValidationFailed")


def test_withdrawn_invitation_expires_and_fails_the_accept_task_in_flight(emu, pc, ctl):
    ref = ctl("simulate/aws-referral", {"catalog": "AWS"})
    _slow_tasks(ctl)
    started = pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="w-1", Identifier=ref["invitation_id"]
    )
    out = ctl("simulate/withdraw-invitation", {"catalog": "AWS", "identifier": ref["invitation_id"]})
    assert out["status"] == "EXPIRED"
    inv = pc.get_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])
    assert inv["Status"] == "EXPIRED"
    assert inv["ExpirationDate"] < inv["InvitationDate"] + dt.timedelta(days=15)
    expired = _events(ctl, "Engagement Invitation Expired")
    assert [e["detail"]["engagementInvitation"]["id"] for e in expired] == [ref["invitation_id"]]
    _finish_tasks(ctl)
    done = _accept_task(pc, started["TaskId"])
    assert (done["TaskStatus"], done["ReasonCode"]) == ("FAILED", "InvitationValidationFailed")
    assert pc.list_opportunities(Catalog="AWS")["OpportunitySummaries"] == []
    # Only a pending invitation can be withdrawn.
    again = {"catalog": "AWS", "identifier": ref["invitation_id"]}
    assert _control_error(emu, "simulate/withdraw-invitation", again) == "ConflictException"

    other = ctl("simulate/aws-referral", {"catalog": "AWS"})
    ctl("simulate/withdraw-invitation", {"identifier": other["invitation_id"], "status": "REJECTED"})
    rejected = pc.get_engagement_invitation(Catalog="AWS", Identifier=other["invitation_id"])
    assert rejected["Status"] == "REJECTED"
    assert "RejectionReason" not in rejected
    assert [
        e["detail"]["engagementInvitation"]["id"] for e in _events(ctl, "Engagement Invitation Rejected")
    ] == [other["invitation_id"]]


def test_accept_task_runs_asynchronously_and_creates_the_linked_opportunity(pc, ctl):
    ref = ctl(
        "simulate/aws-referral",
        {
            "catalog": "Sandbox",
            "payload": {
                "Customer": {"CompanyName": "Referral Co", "Industry": "Retail"},
                "Project": {"Title": "Storefront rebuild", "TargetCompletionDate": "2031-06-30"},
                "OpportunityType": "Expansion",
                "CustomerDetails": {"Address": {"City": "Austin", "StateOrRegion": "TX"}},
            },
        },
    )
    ctl("events", method="DELETE")
    _slow_tasks(ctl)
    started = pc.start_engagement_by_accepting_invitation_task(
        Catalog="Sandbox", ClientToken="a-1", Identifier=ref["invitation_id"]
    )
    assert started["TaskStatus"] == "IN_PROGRESS"
    assert started["EngagementInvitationId"] == ref["invitation_id"]
    assert _accept_task(pc, started["TaskId"], "Sandbox")["TaskStatus"] == "IN_PROGRESS"
    assert (
        pc.get_engagement_invitation(Catalog="Sandbox", Identifier=ref["invitation_id"])["Status"]
        == "PENDING"
    )
    _finish_tasks(ctl)
    done = _accept_task(pc, started["TaskId"], "Sandbox")
    assert done["TaskStatus"] == "COMPLETE"
    assert re.fullmatch(r"O\d+", done["OpportunityId"])
    assert re.fullmatch(r"job-[0-9a-z]{13}", done["ResourceSnapshotJobId"])
    oid = done["OpportunityId"]
    # Created in the receiver's catalog, from the invitation payload plus the customer details it withheld.
    assert pc.list_opportunities(Catalog="AWS")["OpportunitySummaries"] == []
    opp = pc.get_opportunity(Catalog="Sandbox", Identifier=oid)
    assert opp["OpportunityType"] == "Expansion"
    assert opp["Customer"]["Account"]["CompanyName"] == "Referral Co"
    assert opp["Customer"]["Account"]["Address"]["City"] == "Austin"
    assert opp["Customer"]["Contacts"][0]["Email"] == "jordan.buyer@example.com"
    assert opp["Project"]["Title"] == "Storefront rebuild"
    assert opp["LifeCycle"]["TargetCloseDate"] == "2031-06-30"
    links = pc.list_engagement_resource_associations(
        Catalog="Sandbox", EngagementIdentifier=ref["engagement_id"]
    )
    assert [
        (r["ResourceType"], r["ResourceId"]) for r in links["EngagementResourceAssociationSummaries"]
    ] == [("Opportunity", oid)]
    job = pc.get_resource_snapshot_job(
        Catalog="Sandbox", ResourceSnapshotJobIdentifier=done["ResourceSnapshotJobId"]
    )
    assert (job["EngagementId"], job["ResourceId"], job["Status"]) == (ref["engagement_id"], oid, "Running")
    summary = pc.get_aws_opportunity_summary(Catalog="Sandbox", RelatedOpportunityIdentifier=oid)
    assert (summary["Origin"], summary["LifeCycle"]["TargetCloseDate"]) == ("AWS Referral", "2031-06-30")
    assert summary["OpportunityTeam"][0]["Email"] == "aws.seller@amazon.com"
    types = {e["detail-type"] for e in ctl("events", method="GET")["events"]}
    assert {
        "Engagement Invitation Accepted",
        "Engagement Member Added",
        "Opportunity Created",
        "Opportunity Updated",
        "Engagement Resource Snapshot Created",
    } <= types
    created = _events(ctl, "Opportunity Created")
    assert [e["detail"]["opportunity"]["identifier"] for e in created] == [oid]
    assert created[0]["detail"]["catalog"] == "Sandbox"
    joined = _events(ctl, "Engagement Member Added")[0]
    assert joined["detail"]["engagementMember"]["accountId"] == "123456789012"
    assert joined["version"] == "0"


def test_accept_task_is_idempotent_and_never_creates_a_second_opportunity(pc, ctl):
    ref = ctl("simulate/aws-referral", {"catalog": "AWS"})
    _slow_tasks(ctl)
    first = pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="same", Identifier=ref["invitation_id"]
    )
    replay = pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="same", Identifier=ref["invitation_id"]
    )
    assert replay["TaskId"] == first["TaskId"]
    # Another token while the first task runs: the invitation is already being accepted.
    with pytest.raises(ClientError) as exc:
        pc.start_engagement_by_accepting_invitation_task(
            Catalog="AWS", ClientToken="other", Identifier=ref["invitation_id"]
        )
    assert exc.value.response["Error"]["Code"] == "ConflictException"
    _finish_tasks(ctl)
    replay = pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="same", Identifier=ref["invitation_id"]
    )
    assert (replay["TaskId"], replay["TaskStatus"]) == (first["TaskId"], "COMPLETE")
    with pytest.raises(ClientError) as exc:
        pc.start_engagement_by_accepting_invitation_task(
            Catalog="AWS", ClientToken="third", Identifier=ref["invitation_id"]
        )
    assert exc.value.response["Error"]["Code"] == "ConflictException"
    assert len(pc.list_opportunities(Catalog="AWS")["OpportunitySummaries"]) == 1
    tasks = pc.list_engagement_by_accepting_invitation_tasks(
        Catalog="AWS", EngagementInvitationIdentifier=[ref["invitation_id"]]
    )
    assert [t["TaskId"] for t in tasks["TaskSummaries"]] == [first["TaskId"]]


def test_injected_accept_fault_fails_the_next_task_and_changes_nothing(emu, pc, ctl):
    assert _control_error(emu, "faults/accept-task", {"reason_code": "NotACode"}) == "bad request"
    queued = ctl("faults/accept-task", {"reason_code": "OpportunityConflict", "times": 1, "message": "busy"})
    assert queued["count"] == 1
    ref = ctl("simulate/aws-referral", {"catalog": "AWS"})
    _slow_tasks(ctl)
    failing = pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="f-1", Identifier=ref["invitation_id"]
    )
    assert failing["TaskStatus"] == "IN_PROGRESS"
    assert ctl("faults/accept-task", method="GET")["count"] == 0
    _finish_tasks(ctl)
    failed = _accept_task(pc, failing["TaskId"])
    assert (failed["TaskStatus"], failed["ReasonCode"], failed["Message"]) == (
        "FAILED",
        "OpportunityConflict",
        "busy",
    )
    assert pc.get_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])["Status"] == "PENDING"
    assert pc.list_opportunities(Catalog="AWS")["OpportunitySummaries"] == []
    assert _events(ctl, "Engagement Invitation Accepted") == []
    # The fault was for one task only: a retry with a new token succeeds.
    retry = pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="f-2", Identifier=ref["invitation_id"]
    )
    _finish_tasks(ctl)
    assert _accept_task(pc, retry["TaskId"])["TaskStatus"] == "COMPLETE"


def test_member_joining_shows_in_members_moves_modified_at_and_emits_member_added(emu, pc, ctl):
    ref = _accepted_referral(pc, ctl)
    eid = ref["engagement_id"]
    before = pc.get_engagement(Catalog="AWS", Identifier=eid)
    out = ctl(
        "simulate/engagement-member",
        {
            "catalog": "AWS",
            "engagement_id": eid,
            "member": {"CompanyName": "Second Partner LLC", "WebsiteUrl": "https://second.example"},
        },
    )
    account = out["member"]["AccountId"]
    assert re.fullmatch(r"\d{12}", account)
    members = pc.list_engagement_members(Catalog="AWS", Identifier=eid)["EngagementMemberList"]
    assert {
        "CompanyName": "Second Partner LLC",
        "WebsiteUrl": "https://second.example",
        "AccountId": account,
    } in (members)
    after = pc.get_engagement(Catalog="AWS", Identifier=eid)
    assert after["MemberCount"] == before["MemberCount"] + 1 == 3
    assert after["ModifiedAt"] > before["ModifiedAt"]
    added = [e["detail"] for e in _events(ctl, "Engagement Member Added")]
    assert {
        "catalog": "AWS",
        "engagement": {"id": eid},
        "engagementMember": {"accountId": account, "companyName": "Second Partner LLC"},
    } in added
    dup = {"engagement_id": eid, "member": {"CompanyName": "Again", "AccountId": account}}
    assert _control_error(emu, "simulate/engagement-member", dup) == "ConflictException"
    assert (
        _control_error(emu, "simulate/engagement-member", {"engagement_id": eid, "member": {}})
        == "ValidationException"
    )


def test_engagement_update_by_aws_moves_modified_at_and_locks_out_stale_context_updates(emu, pc, ctl):
    context = {
        "CustomerProject": {
            "Customer": {
                "Industry": "Retail",
                "CompanyName": "Shop Co",
                "WebsiteUrl": "https://shop.example",
                "CountryCode": "US",
            },
            "Project": {
                "Title": "Storefront",
                "BusinessProblem": "Checkout falls over on every sale day.",
                "TargetCompletionDate": "2031-03-01",
            },
        }
    }
    eng = pc.create_engagement(
        Catalog="AWS",
        ClientToken="eu-1",
        Title="Joint pursuit",
        Description="d",
        Contexts=[{"Type": "CustomerProject", "Payload": context}],
    )
    created = _events(ctl, "Engagement Created")[-1]["detail"]["engagement"]
    assert (created["engagementId"], created["CreatedBy"], created["ContextTypes"]) == (
        eng["Id"],
        "123456789012",
        ["CustomerProject"],
    )
    stale = pc.get_engagement(Catalog="AWS", Identifier=eng["Id"])["ModifiedAt"]
    changed = {**context, "CustomerProject": {**context["CustomerProject"]}}
    changed["CustomerProject"]["Project"] = {
        **context["CustomerProject"]["Project"],
        "Title": "Storefront v2",
    }
    ctl(
        "simulate/engagement-update",
        {
            "catalog": "AWS",
            "engagement_id": eng["Id"],
            "Title": "Joint pursuit (AWS)",
            "Contexts": [{"Id": "1", "Type": "CustomerProject", "Payload": changed}],
        },
    )
    got = pc.get_engagement(Catalog="AWS", Identifier=eng["Id"])
    assert (got["Title"], got["ModifiedBy"]) == ("Joint pursuit (AWS)", "aws")
    assert got["Contexts"][0]["Payload"]["CustomerProject"]["Project"]["Title"] == "Storefront v2"
    assert got["ModifiedAt"] > stale
    updated = _events(ctl, "Engagement Updated")[-1]
    assert updated["detail"]["engagement"]["engagementId"] == eng["Id"]
    assert updated["detail"]["engagement"]["LastModifiedBy"] == "aws"
    assert updated["resources"] == [eng["Arn"]]
    request = {
        "Catalog": "AWS",
        "EngagementIdentifier": eng["Id"],
        "ContextIdentifier": "1",
        "Type": "CustomerProject",
        "Payload": context,
    }
    with pytest.raises(ClientError) as exc:
        pc.update_engagement_context(EngagementLastModifiedAt=stale, **request)
    assert exc.value.response["Error"]["Code"] == "ConflictException"
    unchanged = pc.get_engagement(Catalog="AWS", Identifier=eng["Id"])
    assert unchanged["Contexts"][0]["Payload"]["CustomerProject"]["Project"]["Title"] == "Storefront v2"
    ok = pc.update_engagement_context(EngagementLastModifiedAt=got["ModifiedAt"], **request)
    assert ok["EngagementLastModifiedAt"] > got["ModifiedAt"]
    assert _events(ctl, "Engagement Updated")[-1]["detail"]["engagement"]["LastModifiedBy"] == "123456789012"
    # What AWS sets must fit GetEngagement (Title is at most 40 characters); a refused update changes nothing.
    assert (
        _control_error(emu, "simulate/engagement-update", {"engagement_id": eng["Id"], "Title": "x" * 41})
        == "ValidationException"
    )
    assert (
        _control_error(emu, "simulate/engagement-update", {"engagement_id": eng["Id"], "Status": "X"})
        == "bad request"
    )
    assert (
        pc.get_engagement(Catalog="AWS", Identifier=eng["Id"])["ModifiedAt"] == ok["EngagementLastModifiedAt"]
    )


def test_aws_summary_change_is_visible_and_emits_opportunity_updated(emu, pc, ctl):
    ref = _accepted_referral(pc, ctl)
    oid = ref["opportunity_id"]
    before = pc.get_opportunity(Catalog="AWS", Identifier=oid)["LastModifiedDate"]
    ctl("events", method="DELETE")
    ctl(
        "simulate/aws-summary",
        {
            "catalog": "AWS",
            "opportunity_id": oid,
            "InvolvementType": "For Visibility Only",
            "InvolvementTypeChangeReason": "Customer Requested",
            "LifeCycle": {"Stage": "Qualified", "NextSteps": "Schedule the technical deep dive"},
            "OpportunityTeam": [
                {"Email": "pdm@amazon.com", "FirstName": "Pat", "LastName": "Dee", "BusinessTitle": "PDM"}
            ],
            "Insights": {"NextBestActions": "Share a reference architecture", "EngagementScore": "High"},
        },
    )
    summary = pc.get_aws_opportunity_summary(Catalog="AWS", RelatedOpportunityIdentifier=oid)
    assert (summary["InvolvementType"], summary["InvolvementTypeChangeReason"]) == (
        "For Visibility Only",
        "Customer Requested",
    )
    assert summary["LifeCycle"]["Stage"] == "Qualified"
    assert summary["LifeCycle"]["TargetCloseDate"]  # kept: the change is merged into the summary
    assert [h["Value"] for h in summary["LifeCycle"]["NextStepsHistory"]] == [
        "Schedule the technical deep dive"
    ]
    assert summary["OpportunityTeam"] == [
        {"Email": "pdm@amazon.com", "FirstName": "Pat", "LastName": "Dee", "BusinessTitle": "PDM"}
    ]
    assert summary["Insights"]["EngagementScore"] == "High"
    updated = _events(ctl, "Opportunity Updated")
    assert [e["detail"]["opportunity"]["identifier"] for e in updated] == [oid]
    # AWS's record changed, the partner's did not (unless the control says touch_opportunity).
    assert pc.get_opportunity(Catalog="AWS", Identifier=oid)["LastModifiedDate"] == before
    ctl("simulate/aws-summary", {"opportunity_id": oid, "Visibility": "Limited", "touch_opportunity": True})
    assert pc.get_opportunity(Catalog="AWS", Identifier=oid)["LastModifiedDate"] > before
    bad = {"opportunity_id": oid, "InvolvementType": "Sometimes"}
    assert _control_error(emu, "simulate/aws-summary", bad) == "ValidationException"
    assert pc.get_aws_opportunity_summary(Catalog="AWS", RelatedOpportunityIdentifier=oid)[
        "InvolvementType"
    ] == ("For Visibility Only")
    # An opportunity AWS has not seen has no AWS summary to change.
    own = pc.create_opportunity(
        Catalog="AWS", ClientToken="own", Customer={"Account": {"CompanyName": "Own"}}
    )
    assert (
        _control_error(emu, "simulate/aws-summary", {"opportunity_id": own["Id"], "Visibility": "Full"})
        == "ResourceNotFoundException"
    )
