"""Engagements, invitations, snapshots, async tasks, solutions, settings and tags; plus the walk over all
63 operations checking every response against the model's output shape."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from pc_helpers import associate_solution, opportunity_payload, wait_for
from test_pc_bulk import drive_bulk_jobs
from test_pc_customer_accounts import drive_customer_accounts
from test_pc_search import drive_search

from emulators.partner_central import shapes

CUSTOMER_PROJECT = {
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
            "TargetCompletionDate": "2027-03-01",
        },
    }
}


def _task_done(pc, lister, task_id):
    def check():
        tasks = getattr(pc, lister)(Catalog="AWS", TaskIdentifier=[task_id])["TaskSummaries"]
        return tasks[0] if tasks and tasks[0]["TaskStatus"] != "IN_PROGRESS" else None

    return wait_for(check)


def test_aws_referral_accepted_by_task_creates_opportunity(pc, ctl):
    ref = ctl("simulate/aws-referral", {"catalog": "AWS"})
    invitations = pc.list_engagement_invitations(Catalog="AWS", ParticipantType="RECEIVER")
    summary = invitations["EngagementInvitationSummaries"][0]
    assert summary["Id"] == ref["invitation_id"]
    assert summary["Status"] == "PENDING"
    assert (summary["ExpirationDate"] - summary["InvitationDate"]).days == 15
    inv = pc.get_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])
    assert inv["PayloadType"] == "OpportunityInvitation"
    started = pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="acc-1", Identifier=ref["invitation_id"]
    )
    assert started["TaskStatus"] == "IN_PROGRESS"
    done = _task_done(pc, "list_engagement_by_accepting_invitation_tasks", started["TaskId"])
    assert done["TaskStatus"] == "COMPLETE"
    opp = pc.get_opportunity(Catalog="AWS", Identifier=done["OpportunityId"])
    assert opp["Customer"]["Account"]["CompanyName"] == "Example Corp"
    assert (
        pc.get_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])["Status"] == "ACCEPTED"
    )
    members = pc.list_engagement_members(Catalog="AWS", Identifier=ref["engagement_id"])[
        "EngagementMemberList"
    ]
    assert {m["AccountId"] for m in members} == {"aws", "123456789012"}


def test_accepting_a_non_pending_invitation_fails_the_task(pc, ctl):
    ref = ctl("simulate/aws-referral", {"catalog": "AWS"})
    pc.reject_engagement_invitation(
        Catalog="AWS", Identifier=ref["invitation_id"], RejectionReason="No capacity"
    )
    with pytest.raises(ClientError) as exc:
        pc.accept_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])
    assert exc.value.response["Error"]["Code"] == "ConflictException"
    started = pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="acc-2", Identifier=ref["invitation_id"]
    )
    done = _task_done(pc, "list_engagement_by_accepting_invitation_tasks", started["TaskId"])
    assert (done["TaskStatus"], done["ReasonCode"]) == ("FAILED", "InvitationValidationFailed")


def test_invitation_expires_after_fifteen_days(pc, ctl):
    ref = ctl("simulate/aws-referral", {"catalog": "AWS"})
    ctl("clock", {"advance_seconds": 14 * 86400})
    assert pc.get_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])["Status"] == "PENDING"
    ctl("clock", {"advance_seconds": 86400 + 1})
    assert pc.get_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])["Status"] == "EXPIRED"
    types = [e["detail-type"] for e in ctl("events", method="GET")["events"]]
    assert "Engagement Invitation Expired" in types
    with pytest.raises(ClientError):
        pc.accept_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])


def test_start_engagement_from_opportunity_submits(pc, ctl):
    opp = pc.create_opportunity(**opportunity_payload())
    associate_solution(pc, opp["Id"])
    started = pc.start_engagement_from_opportunity_task(
        Catalog="AWS", ClientToken="s-1", Identifier=opp["Id"], AwsSubmission={"InvolvementType": "Co-Sell"}
    )
    done = _task_done(pc, "list_engagement_from_opportunity_tasks", started["TaskId"])
    assert done["TaskStatus"] == "COMPLETE"
    assert pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])["LifeCycle"]["ReviewStatus"] == "Submitted"
    eng = pc.get_engagement(Catalog="AWS", Identifier=done["EngagementId"])
    assert eng["Contexts"][0]["Type"] == "CustomerProject"
    sent = pc.list_engagement_invitations(Catalog="AWS", ParticipantType="SENDER")[
        "EngagementInvitationSummaries"
    ]
    assert sent[0]["Id"] == done["EngagementInvitationId"]
    snaps = pc.list_resource_snapshots(Catalog="AWS", EngagementIdentifier=done["EngagementId"])
    assert snaps["ResourceSnapshotSummaries"][0]["Revision"] == 1
    types = [e["detail-type"] for e in ctl("events", method="GET")["events"]]
    # The documented events for a submission (EventBridge does not promise their order).
    assert {
        "Engagement Member Added",
        "Engagement Resource Snapshot Created",
        "Engagement Invitation Created",
        "Opportunity Updated",
    } <= set(types)


def test_start_engagement_from_incomplete_opportunity_fails_with_reason(pc):
    opp = pc.create_opportunity(
        Catalog="AWS", ClientToken="thin", Customer={"Account": {"CompanyName": "Thin"}}
    )
    started = pc.start_engagement_from_opportunity_task(
        Catalog="AWS", ClientToken="s-2", Identifier=opp["Id"], AwsSubmission={"InvolvementType": "Co-Sell"}
    )
    done = _task_done(pc, "list_engagement_from_opportunity_tasks", started["TaskId"])
    assert (done["TaskStatus"], done["ReasonCode"]) == ("FAILED", "OpportunityValidationFailed")
    assert "Project.Title" in done["Message"]


def test_engagement_context_optimistic_lock(pc):
    eng = pc.create_engagement(
        Catalog="AWS",
        ClientToken="e-1",
        Title="Joint pursuit",
        Description="d",
        Contexts=[{"Type": "CustomerProject", "Payload": CUSTOMER_PROJECT}],
    )
    ctx = pc.create_engagement_context(
        Catalog="AWS",
        EngagementIdentifier=eng["Id"],
        ClientToken="c-1",
        Type="CustomerProject",
        Payload=CUSTOMER_PROJECT,
    )
    assert ctx["ContextId"] == "2"
    pc.update_engagement_context(
        Catalog="AWS",
        EngagementIdentifier=eng["Id"],
        ContextIdentifier="2",
        EngagementLastModifiedAt=ctx["EngagementLastModifiedAt"],
        Type="CustomerProject",
        Payload=CUSTOMER_PROJECT,
    )
    with pytest.raises(ClientError) as exc:
        pc.update_engagement_context(
            Catalog="AWS",
            EngagementIdentifier=eng["Id"],
            ContextIdentifier="2",
            EngagementLastModifiedAt=ctx["EngagementLastModifiedAt"],
            Type="CustomerProject",
            Payload=CUSTOMER_PROJECT,
        )
    assert exc.value.response["Error"]["Code"] == "ConflictException"


def test_snapshot_job_lifecycle_and_revisions(pc):
    opp = pc.create_opportunity(**opportunity_payload())
    associate_solution(pc, opp["Id"])
    started = pc.start_engagement_from_opportunity_task(
        Catalog="AWS", ClientToken="s-3", Identifier=opp["Id"], AwsSubmission={"InvolvementType": "Co-Sell"}
    )
    done = _task_done(pc, "list_engagement_from_opportunity_tasks", started["TaskId"])
    eid = done["EngagementId"]
    snap = pc.create_resource_snapshot(
        Catalog="AWS",
        EngagementIdentifier=eid,
        ResourceType="Opportunity",
        ResourceIdentifier=opp["Id"],
        ClientToken="r-1",
        ResourceSnapshotTemplateIdentifier="AWSOpportunitySummary",
    )
    assert snap["Revision"] == 2
    latest = pc.get_resource_snapshot(
        Catalog="AWS",
        EngagementIdentifier=eid,
        ResourceType="Opportunity",
        ResourceIdentifier=opp["Id"],
        ResourceSnapshotTemplateIdentifier="AWSOpportunitySummary",
    )
    assert latest["Revision"] == 2
    assert latest["Payload"]["OpportunitySummary"]["Lifecycle"]["ReviewStatus"] == "Submitted"
    job = pc.get_resource_snapshot_job(
        Catalog="AWS", ResourceSnapshotJobIdentifier=done["ResourceSnapshotJobId"]
    )
    assert job["Status"] == "Running"
    with pytest.raises(ClientError) as exc:
        pc.delete_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    assert exc.value.response["Error"]["Code"] == "ConflictException"
    pc.stop_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    pc.delete_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    assert pc.list_resource_snapshot_jobs(Catalog="AWS")["ResourceSnapshotJobSummaries"] == []


def test_tags_on_arns(pc):
    opp = pc.create_opportunity(**opportunity_payload(Tags=[{"Key": "source", "Value": "hubspot"}]))
    arn = pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])["Arn"]
    pc.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "east"}])
    pc.untag_resource(ResourceArn=arn, TagKeys=["source"])
    assert pc.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "east"}]
    with pytest.raises(ClientError) as exc:
        pc.list_tags_for_resource(ResourceArn=arn.replace(opp["Id"], "O999"))
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_every_operation_response_matches_output_shape(pc, ctl):
    """Drive all 63 operations successfully and validate each raw response body against the model."""
    seen: dict[str, list] = {}

    def capture(http_response, model, **_):
        if http_response.status_code == 200:
            seen.setdefault(model.name, []).append(json.loads(http_response.content or b"{}"))

    pc.meta.events.register("after-call.partnercentral-selling", capture)
    ctl("seed", {"opportunities": 5, "seed": 2})
    opp = pc.create_opportunity(**opportunity_payload(Tags=[{"Key": "k", "Value": "v"}]))
    oid = opp["Id"]
    got = pc.get_opportunity(Catalog="AWS", Identifier=oid)
    pc.update_opportunity(
        Catalog="AWS",
        Identifier=oid,
        LastModifiedDate=got["LastModifiedDate"],
        **{k: got[k] for k in ("Customer", "Project", "LifeCycle", "OpportunityType")},
    )
    pc.list_opportunities(Catalog="AWS")
    sol = pc.list_solutions(Catalog="AWS")["SolutionSummaries"][0]["Id"]
    pc.associate_opportunity(
        Catalog="AWS", OpportunityIdentifier=oid, RelatedEntityType="Solutions", RelatedEntityIdentifier=sol
    )
    pc.disassociate_opportunity(
        Catalog="AWS", OpportunityIdentifier=oid, RelatedEntityType="Solutions", RelatedEntityIdentifier=sol
    )
    associate_solution(pc, oid, sol)  # submission needs one
    pc.assign_opportunity(
        Catalog="AWS",
        Identifier=oid,
        Assignee={"Email": "a@b.example", "FirstName": "A", "LastName": "B", "BusinessTitle": "PDM"},
    )
    started = pc.start_engagement_from_opportunity_task(
        Catalog="AWS", ClientToken="all-1", Identifier=oid, AwsSubmission={"InvolvementType": "Co-Sell"}
    )
    done = _task_done(pc, "list_engagement_from_opportunity_tasks", started["TaskId"])
    eid = done["EngagementId"]
    other = pc.create_opportunity(**opportunity_payload(ClientToken="other"))["Id"]
    associate_solution(pc, other, sol)
    pc.submit_opportunity(Catalog="AWS", Identifier=other, InvolvementType="Co-Sell")
    pc.get_aws_opportunity_summary(Catalog="AWS", RelatedOpportunityIdentifier=oid)
    pc.get_engagement(Catalog="AWS", Identifier=eid)
    pc.list_engagements(Catalog="AWS")
    pc.list_engagement_members(Catalog="AWS", Identifier=eid)
    pc.list_engagement_resource_associations(Catalog="AWS", EngagementIdentifier=eid)
    new_eng = pc.create_engagement(Catalog="AWS", ClientToken="all-2", Title="T", Description="D")
    ctx = pc.create_engagement_context(
        Catalog="AWS",
        EngagementIdentifier=new_eng["Id"],
        ClientToken="all-3",
        Type="CustomerProject",
        Payload=CUSTOMER_PROJECT,
    )
    pc.update_engagement_context(
        Catalog="AWS",
        EngagementIdentifier=new_eng["Id"],
        ContextIdentifier="1",
        EngagementLastModifiedAt=ctx["EngagementLastModifiedAt"],
        Type="CustomerProject",
        Payload=CUSTOMER_PROJECT,
    )
    pc.create_engagement_invitation(
        Catalog="AWS",
        ClientToken="all-4",
        EngagementIdentifier=new_eng["Id"],
        Invitation={
            "Message": "Join us",
            "Receiver": {"Account": {"AwsAccountId": "210987654321"}},
            "Payload": {
                "OpportunityInvitation": {
                    "ReceiverResponsibilities": ["Reseller"],
                    "Customer": CUSTOMER_PROJECT["CustomerProject"]["Customer"],
                    "Project": {
                        "Title": "T",
                        "BusinessProblem": "x" * 20,
                        "TargetCompletionDate": "2027-01-01",
                        "ExpectedCustomerSpend": [],
                    },
                }
            },
        },
    )
    pc.start_opportunity_from_engagement_task(
        Catalog="AWS", ClientToken="all-5", Identifier=new_eng["Id"], ContextIdentifier=ctx["ContextId"]
    )
    pc.list_opportunity_from_engagement_tasks(Catalog="AWS")
    prospect = pc.start_prospecting_from_engagement_task(
        Catalog="AWS", Identifiers=[eid], TaskName="p", ClientToken="all-6"
    )
    pc.get_prospecting_from_engagement_task(Catalog="AWS", TaskIdentifier=prospect["TaskId"])
    pc.list_prospecting_from_engagement_tasks(Catalog="AWS")
    ref = ctl("simulate/aws-referral", {"catalog": "AWS"})
    ref2 = ctl("simulate/aws-referral", {"catalog": "AWS"})
    ref3 = ctl("simulate/aws-referral", {"catalog": "AWS"})
    pc.list_engagement_invitations(Catalog="AWS", ParticipantType="RECEIVER")
    pc.get_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])
    pc.accept_engagement_invitation(Catalog="AWS", Identifier=ref["invitation_id"])
    pc.reject_engagement_invitation(Catalog="AWS", Identifier=ref2["invitation_id"])
    pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="all-7", Identifier=ref3["invitation_id"]
    )
    pc.list_engagement_by_accepting_invitation_tasks(Catalog="AWS")
    pc.create_resource_snapshot(
        Catalog="AWS",
        EngagementIdentifier=eid,
        ResourceType="Opportunity",
        ResourceIdentifier=oid,
        ResourceSnapshotTemplateIdentifier="AWSOpportunitySummary",
        ClientToken="all-8",
    )
    pc.get_resource_snapshot(
        Catalog="AWS",
        EngagementIdentifier=eid,
        ResourceType="Opportunity",
        ResourceIdentifier=oid,
        ResourceSnapshotTemplateIdentifier="AWSOpportunitySummary",
        Revision=1,
    )
    pc.list_resource_snapshots(Catalog="AWS", EngagementIdentifier=eid)
    job = pc.create_resource_snapshot_job(
        Catalog="AWS",
        ClientToken="all-9",
        EngagementIdentifier=eid,
        ResourceType="Opportunity",
        ResourceIdentifier=oid,
        ResourceSnapshotTemplateIdentifier="Custom1",
    )
    pc.start_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    pc.get_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    pc.list_resource_snapshot_jobs(Catalog="AWS")
    pc.stop_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    pc.delete_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    pc.put_selling_system_settings(Catalog="AWS", ResourceSnapshotJobRoleIdentifier="SnapshotRole")
    assert pc.get_selling_system_settings(Catalog="AWS")["ResourceSnapshotJobRoleArn"].endswith(
        ":role/SnapshotRole"
    )
    arn = got["Arn"]
    pc.tag_resource(ResourceArn=arn, Tags=[{"Key": "k2", "Value": "v2"}])
    pc.untag_resource(ResourceArn=arn, TagKeys=["k2"])
    pc.list_tags_for_resource(ResourceArn=arn)
    # The 18 operations of botocore 1.44.8+, each group driven by its own test module.
    drive_search(pc, ctl)
    drive_bulk_jobs(pc, ctl)
    drive_customer_accounts(pc, ctl)

    assert sorted(seen) == sorted(shapes.operation_names())
    assert len(seen) == 63
    problems = {
        op: shapes.output_errors(op, body)
        for op, bodies in seen.items()
        for body in bodies
        if shapes.output_errors(op, body)
    }
    assert problems == {}
