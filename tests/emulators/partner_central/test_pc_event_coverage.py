"""Which EventBridge event each Partner Central change emits: every mutating operation, table-driven.

Issue 15: "Every change emits the EventBridge event AWS documents for it". Each row drives one mutating
operation (or a time-driven transition: task completion, invitation expiry, bulk job progress, customer
account matching) through boto3 against the emulator, after clearing the event outbox, and compares the
detail-types emitted with the row's expectation. Sources (the same as docs/api-rules.md, "EventBridge events
per operation"): the developer guide "Notifications for the AWS Partner Central Selling API" (event types, the
scenario table and samples), "Working with opportunity updates" ("For all updates made through both the UI and
API, the Opportunity Updated event is generated") and the EventBridge reference "AWS Partner Central Selling
events" (its list of detail-types). A row marked ``documented=False`` is our decision where AWS says nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.session import get_session
from pc_helpers import associate_solution, opportunity_payload, update_from, wait_for
from test_pc_bulk import account, finish, opp_file, record, s3, start  # noqa: F401 - s3 is a fixture

from cosell_sync import bulk_csv
from cosell_sync.events import parse_event

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
OFFER = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-abc123"
ASSIGNEE = {"Email": "pdm@partner.example", "FirstName": "Pat", "LastName": "Lee", "BusinessTitle": "PDM"}


@dataclass
class World:
    """The clients and controls a row's setup and action use."""

    pc: Any
    ctl: Callable[..., Any]
    s3: Any = None

    def opportunity(self, *, solution: bool = True) -> str:
        """A new draft opportunity (with a solution, so it can be submitted)."""
        oid = self.pc.create_opportunity(**opportunity_payload())["Id"]
        if solution:
            associate_solution(self.pc, oid)
        return oid

    def task_done(self, lister: str, task_id: str) -> dict[str, Any]:
        """Wait (emulator task delay) until a task is no longer IN_PROGRESS."""

        def check() -> dict[str, Any] | None:
            tasks = getattr(self.pc, lister)(Catalog="AWS", TaskIdentifier=[task_id])["TaskSummaries"]
            return tasks[0] if tasks and tasks[0]["TaskStatus"] != "IN_PROGRESS" else None

        return wait_for(check)

    def engaged(self) -> dict[str, str]:
        """An opportunity sent to AWS with StartEngagementFromOpportunityTask: its id and engagement id."""
        oid = self.opportunity()
        task = self.pc.start_engagement_from_opportunity_task(
            Catalog="AWS",
            ClientToken=uuid.uuid4().hex,
            Identifier=oid,
            AwsSubmission={"InvolvementType": "Co-Sell"},
        )
        done = self.task_done("list_engagement_from_opportunity_tasks", task["TaskId"])
        return {"oid": oid, "eid": done["EngagementId"]}

    def approved(self) -> dict[str, str]:
        """An engaged opportunity AWS has approved (editable again, its snapshot job running)."""
        ids = self.engaged()
        self.ctl("simulate/review", {"identifier": ids["oid"], "review_status": "Approved"})
        return ids

    def submitted(self) -> dict[str, str]:
        """An opportunity submitted with SubmitOpportunity (no engagement, no invitation)."""
        oid = self.opportunity()
        self.pc.submit_opportunity(Catalog="AWS", Identifier=oid, InvolvementType="Co-Sell")
        return {"oid": oid}

    def engagement(self) -> dict[str, str]:
        """An engagement this partner created, with one CustomerProject context ("1")."""
        eng = self.pc.create_engagement(
            Catalog="AWS",
            ClientToken=uuid.uuid4().hex,
            Title="Joint pursuit",
            Description="d",
            Contexts=[{"Type": "CustomerProject", "Payload": CUSTOMER_PROJECT}],
        )
        got = self.pc.get_engagement(Catalog="AWS", Identifier=eng["Id"])
        return {"eid": eng["Id"], "modified": got["ModifiedAt"]}

    def snapshot_job(self, *, running: bool) -> dict[str, str]:
        """A second snapshot job (template ``Custom1``) on an engaged opportunity, started or not."""
        ids = self.engaged()
        job = self.pc.create_resource_snapshot_job(
            Catalog="AWS",
            ClientToken=uuid.uuid4().hex,
            EngagementIdentifier=ids["eid"],
            ResourceType="Opportunity",
            ResourceIdentifier=ids["oid"],
            ResourceSnapshotTemplateIdentifier="Custom1",
        )
        if running:
            self.pc.start_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
        return {**ids, "job": job["Id"]}


@dataclass(frozen=True)
class Row:
    """One change: what sets it up, what makes it, the events expected, and whether AWS documents them."""

    change: str
    setup: Callable[[World], dict[str, Any]]
    act: Callable[[World, dict[str, Any]], None]
    events: tuple[str, ...]
    documented: bool


def _nothing(_w: World) -> dict[str, Any]:
    return {}


def _update(w: World, s: dict[str, Any]) -> None:
    current = w.pc.get_opportunity(Catalog="AWS", Identifier=s["oid"])
    w.pc.update_opportunity(**update_from(current, OpportunityType="Expansion"))


def _start_engagement(w: World, s: dict[str, Any]) -> None:
    task = w.pc.start_engagement_from_opportunity_task(
        Catalog="AWS", ClientToken="t", Identifier=s["oid"], AwsSubmission={"InvolvementType": "Co-Sell"}
    )
    w.task_done("list_engagement_from_opportunity_tasks", task["TaskId"])


def _invite(w: World, s: dict[str, Any]) -> None:
    w.pc.create_engagement_invitation(
        Catalog="AWS",
        ClientToken="inv",
        EngagementIdentifier=s["eid"],
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


def _accept_task(w: World, s: dict[str, Any]) -> None:
    task = w.pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="acc", Identifier=s["invitation_id"]
    )
    w.task_done("list_engagement_by_accepting_invitation_tasks", task["TaskId"])


def _opportunity_from_engagement(w: World, s: dict[str, Any]) -> None:
    task = w.pc.start_opportunity_from_engagement_task(
        Catalog="AWS", ClientToken="ofe", Identifier=s["eid"], ContextIdentifier="1"
    )
    w.task_done("list_opportunity_from_engagement_tasks", task["TaskId"])


def _prospecting(w: World, s: dict[str, Any]) -> None:
    task = w.pc.start_prospecting_from_engagement_task(
        Catalog="AWS", Identifiers=[s["eid"]], TaskName="p", ClientToken="pro"
    )

    def check() -> bool:
        # The model's prospecting task summary has no status; EndTime is set once the task has finished.
        summaries = w.pc.list_prospecting_from_engagement_tasks(Catalog="AWS")["TaskSummaries"]
        return any(t["TaskId"] == task["TaskId"] and t.get("EndTime") for t in summaries)

    wait_for(check)


def _bulk_create(w: World, s: dict[str, Any]) -> None:
    start(w.pc, w.s3.put("in/create.csv", opp_file([("r1", record()), ("r2", record())])))
    finish(w.ctl)


def _bulk_update(w: World, s: dict[str, Any]) -> None:
    current = w.pc.get_opportunity(Catalog="AWS", Identifier=s["oid"])
    body = record()
    body["Project"]["Title"] = "Renamed"
    row = {**body, "Identifier": s["oid"], "LastModifiedDate": current["LastModifiedDate"]}
    start(w.pc, w.s3.put("in/update.csv", opp_file([("u1", row)], update=True)))
    finish(w.ctl)


def _customer_account_bulk(w: World, s: dict[str, Any]) -> None:
    rows = [("a1", account("Alpha", "alpha.example"))]
    uri = w.s3.put("in/accounts.csv", bulk_csv.write_csv(bulk_csv.CUSTOMER_ACCOUNT, rows))
    w.pc.start_customer_account_bulk_job(Catalog="AWS", ClientToken="cab", FileUri=uri)
    finish(w.ctl)


def _customer_account(w: World) -> dict[str, Any]:
    out = w.pc.create_customer_account(
        Catalog="AWS", Account={"CompanyName": "Acme", "Domain": "acme.example"}
    )
    got = w.pc.get_customer_account(Catalog="AWS", Identifier=out["Id"])
    return {"cid": out["Id"], "modified": got["LastModifiedDate"], "arn": got["Arn"]}


def _opp_arn(w: World) -> dict[str, Any]:
    oid = w.opportunity()
    return {"oid": oid, "arn": w.pc.get_opportunity(Catalog="AWS", Identifier=oid)["Arn"]}


def _engagement_arn(w: World) -> dict[str, Any]:
    eng = w.engagement()
    return {**eng, "arn": w.pc.get_engagement(Catalog="AWS", Identifier=eng["eid"])["Arn"]}


def _solution_arg(s: dict[str, Any], sid: str = "S-1000002") -> dict[str, Any]:
    return {
        "Catalog": "AWS",
        "OpportunityIdentifier": s["oid"],
        "RelatedEntityType": "Solutions",
        "RelatedEntityIdentifier": sid,
    }


OPP_CREATED = ("Opportunity Created",)
OPP_UPDATED = ("Opportunity Updated",)
SENT = (
    "Opportunity Updated",  # ReviewStatus Submitted, the AWS summary appears
    "Engagement Created",
    "Engagement Member Added",
    "Engagement Resource Snapshot Created",
    "Engagement Invitation Created",
)

ROWS: list[Row] = [
    Row(
        "CreateOpportunity",
        _nothing,
        lambda w, s: w.pc.create_opportunity(**opportunity_payload()),
        OPP_CREATED,
        True,
    ),
    Row("UpdateOpportunity", lambda w: {"oid": w.opportunity()}, _update, OPP_UPDATED, True),
    Row(
        "AssociateOpportunity",
        lambda w: {"oid": w.opportunity()},
        lambda w, s: w.pc.associate_opportunity(**_solution_arg(s)),
        OPP_UPDATED,
        True,
    ),
    Row(
        "DisassociateOpportunity",
        lambda w: {"oid": w.opportunity()},
        lambda w, s: w.pc.disassociate_opportunity(**_solution_arg(s, "S-1000001")),
        OPP_UPDATED,
        True,
    ),
    Row(
        "AssignOpportunity",
        lambda w: {"oid": w.opportunity()},
        lambda w, s: w.pc.assign_opportunity(Catalog="AWS", Identifier=s["oid"], Assignee=ASSIGNEE),
        OPP_UPDATED,
        True,
    ),
    Row(
        "SubmitOpportunity",
        lambda w: {"oid": w.opportunity()},
        lambda w, s: w.pc.submit_opportunity(Catalog="AWS", Identifier=s["oid"], InvolvementType="Co-Sell"),
        OPP_UPDATED,
        True,
    ),
    Row(
        "StartEngagementFromOpportunityTask (task COMPLETE)",
        lambda w: {"oid": w.opportunity()},
        _start_engagement,
        SENT,
        True,
    ),
    Row("CreateEngagement", _nothing, lambda w, s: w.engagement(), ("Engagement Created",), True),
    Row(
        "CreateEngagementContext",
        _engagement_arn,
        lambda w, s: w.pc.create_engagement_context(
            Catalog="AWS",
            EngagementIdentifier=s["eid"],
            ClientToken="ctx",
            Type="CustomerProject",
            Payload=CUSTOMER_PROJECT,
        ),
        ("Engagement Updated",),
        True,
    ),
    Row(
        "UpdateEngagementContext",
        _engagement_arn,
        lambda w, s: w.pc.update_engagement_context(
            Catalog="AWS",
            EngagementIdentifier=s["eid"],
            ContextIdentifier="1",
            EngagementLastModifiedAt=s["modified"],
            Type="CustomerProject",
            Payload=CUSTOMER_PROJECT,
        ),
        ("Engagement Updated",),
        True,
    ),
    Row("CreateEngagementInvitation", _engagement_arn, _invite, ("Engagement Invitation Created",), True),
    Row(
        "AcceptEngagementInvitation",
        lambda w: w.ctl("simulate/aws-referral", {"catalog": "AWS"}),
        lambda w, s: w.pc.accept_engagement_invitation(Catalog="AWS", Identifier=s["invitation_id"]),
        ("Engagement Invitation Accepted", "Engagement Member Added"),
        True,
    ),
    Row(
        "RejectEngagementInvitation",
        lambda w: w.ctl("simulate/aws-referral", {"catalog": "AWS"}),
        lambda w, s: w.pc.reject_engagement_invitation(Catalog="AWS", Identifier=s["invitation_id"]),
        ("Engagement Invitation Rejected",),
        True,
    ),
    Row(
        "StartEngagementByAcceptingInvitationTask (task COMPLETE)",
        lambda w: w.ctl("simulate/aws-referral", {"catalog": "AWS"}),
        _accept_task,
        (
            "Engagement Invitation Accepted",
            "Engagement Member Added",
            "Opportunity Created",
            "Engagement Resource Snapshot Created",
            "Opportunity Updated",
        ),
        True,
    ),
    Row(
        "Invitation expiry (15 days on the clock)",
        lambda w: w.ctl("simulate/aws-referral", {"catalog": "AWS"}),
        lambda w, s: w.ctl("clock", {"advance_seconds": 16 * 86400}),
        ("Engagement Invitation Expired",),
        True,
    ),
    Row(
        "StartOpportunityFromEngagementTask (task COMPLETE)",
        _engagement_arn,
        _opportunity_from_engagement,
        OPP_CREATED,
        True,
    ),
    Row(
        "StartProspectingFromEngagementTask (task COMPLETE)",
        lambda w: w.engaged(),
        _prospecting,
        (),
        False,
    ),
    Row(
        "CreateResourceSnapshot",
        lambda w: w.engaged(),
        lambda w, s: w.pc.create_resource_snapshot(
            Catalog="AWS",
            EngagementIdentifier=s["eid"],
            ResourceType="Opportunity",
            ResourceIdentifier=s["oid"],
            ResourceSnapshotTemplateIdentifier="AWSOpportunitySummary",
            ClientToken="snap",
        ),
        ("Engagement Resource Snapshot Created",),
        True,
    ),
    Row(
        "CreateResourceSnapshotJob",
        lambda w: w.engaged(),
        lambda w, s: w.pc.create_resource_snapshot_job(
            Catalog="AWS",
            ClientToken="job",
            EngagementIdentifier=s["eid"],
            ResourceType="Opportunity",
            ResourceIdentifier=s["oid"],
            ResourceSnapshotTemplateIdentifier="Custom1",
        ),
        (),
        False,
    ),
    Row(
        "StartResourceSnapshotJob",
        lambda w: w.snapshot_job(running=False),
        lambda w, s: w.pc.start_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=s["job"]),
        ("Engagement Resource Snapshot Created",),  # the job's first run makes revision 1 of its template
        True,
    ),
    Row(
        "StopResourceSnapshotJob",
        lambda w: w.snapshot_job(running=True),
        lambda w, s: w.pc.stop_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=s["job"]),
        (),
        False,
    ),
    Row(
        "DeleteResourceSnapshotJob",
        lambda w: w.snapshot_job(running=False),
        lambda w, s: w.pc.delete_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=s["job"]),
        (),
        False,
    ),
    Row(
        "PutSellingSystemSettings",
        _nothing,
        lambda w, s: w.pc.put_selling_system_settings(
            Catalog="AWS", ResourceSnapshotJobRoleIdentifier="Role"
        ),
        (),
        False,
    ),
    Row(
        "TagResource (opportunity)",
        _opp_arn,
        lambda w, s: w.pc.tag_resource(ResourceArn=s["arn"], Tags=[{"Key": "team", "Value": "east"}]),
        (),
        False,
    ),
    Row(
        "UntagResource (engagement)",
        _engagement_arn,
        lambda w, s: (
            w.pc.tag_resource(ResourceArn=s["arn"], Tags=[{"Key": "team", "Value": "east"}]),
            w.pc.untag_resource(ResourceArn=s["arn"], TagKeys=["team"]),
        ),
        (),
        False,
    ),
    Row(
        "CreateCustomerAccount (and its matching)",
        _nothing,
        lambda w, s: (_customer_account(w), w.ctl("clock", {"advance_seconds": 3600})),
        (),
        False,
    ),
    Row(
        "UpdateCustomerAccount",
        _customer_account,
        lambda w, s: w.pc.update_customer_account(
            Catalog="AWS",
            Identifier=s["cid"],
            LastModifiedDate=s["modified"],
            Account={"CompanyName": "Acme Two", "Domain": "acme.example"},
        ),
        (),
        False,
    ),
    Row(
        "DeleteCustomerAccount",
        _customer_account,
        lambda w, s: w.pc.delete_customer_account(Catalog="AWS", Identifier=s["cid"]),
        (),
        False,
    ),
    Row("StartOpportunityBulkJob (create file)", _nothing, _bulk_create, OPP_CREATED * 2, True),
    Row(
        "StartOpportunityBulkJob (update file)",
        lambda w: {"oid": w.opportunity()},
        _bulk_update,
        OPP_UPDATED,
        True,
    ),
    Row("StartCustomerAccountBulkJob", _nothing, _customer_account_bulk, (), False),
    # --- Changes on an opportunity shared in an engagement (a running snapshot job): the scenario table.
    Row(
        "UpdateOpportunity (engaged)",
        lambda w: w.approved(),
        _update,
        ("Opportunity Updated", "Engagement Resource Snapshot Created"),
        True,
    ),
    Row(
        "AssociateOpportunity solution (engaged)",
        lambda w: w.approved(),
        lambda w, s: w.pc.associate_opportunity(**_solution_arg(s)),
        ("Opportunity Updated", "Engagement Resource Snapshot Created"),
        True,
    ),
    Row(
        "AssociateOpportunity Marketplace offer (engaged)",
        lambda w: w.approved(),
        lambda w, s: w.pc.associate_opportunity(
            **{
                **_solution_arg(s),
                "RelatedEntityType": "AwsMarketplaceOffers",
                "RelatedEntityIdentifier": OFFER,
            }
        ),
        OPP_UPDATED,
        True,
    ),
    # --- AWS-side changes (test controls): what a partner receives when AWS acts.
    Row(
        "AWS approves an opportunity sent with StartEngagementFromOpportunityTask",
        lambda w: w.engaged(),
        lambda w, s: w.ctl("simulate/review", {"identifier": s["oid"], "review_status": "Approved"}),
        (
            "Engagement Invitation Accepted",
            "Engagement Member Added",
            "Opportunity Updated",
            "Engagement Resource Snapshot Created",
        ),
        True,
    ),
    Row(
        "AWS rejects an opportunity sent with StartEngagementFromOpportunityTask",
        lambda w: w.engaged(),
        lambda w, s: w.ctl(
            "simulate/review",
            {"identifier": s["oid"], "review_status": "Rejected", "review_status_reason": "x"},
        ),
        ("Engagement Invitation Rejected", "Opportunity Updated", "Engagement Resource Snapshot Created"),
        True,
    ),
    Row(
        "AWS moves an engaged opportunity to In review",
        lambda w: w.engaged(),
        lambda w, s: w.ctl("simulate/review", {"identifier": s["oid"], "review_status": "In review"}),
        ("Opportunity Updated", "Engagement Resource Snapshot Created"),
        True,
    ),
    Row(
        "AWS approves an opportunity sent with SubmitOpportunity (no engagement)",
        lambda w: w.submitted(),
        lambda w, s: w.ctl("simulate/review", {"identifier": s["oid"], "review_status": "Approved"}),
        OPP_UPDATED,
        True,
    ),
    Row(
        "AWS updates an engaged opportunity (simulate/aws-update)",
        lambda w: w.approved(),
        lambda w, s: w.ctl("simulate/aws-update", {"identifier": s["oid"], "OpportunityType": "Expansion"}),
        ("Opportunity Updated", "Engagement Resource Snapshot Created"),
        True,
    ),
    Row(
        "AWS changes its AWS Opportunity Summary (simulate/aws-summary)",
        lambda w: w.approved(),
        lambda w, s: w.ctl("simulate/aws-summary", {"opportunity_id": s["oid"], "Visibility": "Limited"}),
        OPP_UPDATED,
        True,
    ),
    Row(
        "A member joins an engagement (simulate/engagement-member)",
        _engagement_arn,
        lambda w, s: w.ctl(
            "simulate/engagement-member", {"engagement_id": s["eid"], "member": {"CompanyName": "Other Co"}}
        ),
        ("Engagement Member Added",),
        True,
    ),
    Row(
        "AWS edits an engagement (simulate/engagement-update)",
        _engagement_arn,
        lambda w, s: w.ctl("simulate/engagement-update", {"engagement_id": s["eid"], "Title": "Renamed"}),
        ("Engagement Updated",),
        True,
    ),
    Row(
        "AWS withdraws a referral (simulate/withdraw-invitation)",
        lambda w: w.ctl("simulate/aws-referral", {"catalog": "AWS"}),
        lambda w, s: w.ctl("simulate/withdraw-invitation", {"identifier": s["invitation_id"]}),
        ("Engagement Invitation Expired",),
        False,
    ),
    Row(
        "An invitation this partner sent expires (15 days)",
        _engagement_arn,
        lambda w, s: (_invite(w, s), w.ctl("clock", {"advance_seconds": 16 * 86400})),
        ("Engagement Invitation Created", "Engagement Invitation Expired"),
        True,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.change for r in ROWS])
def test_change_emits_the_documented_events(row: Row, pc, ctl, s3) -> None:  # noqa: F811 - s3 fixture
    """The change emits exactly the row's detail-types, and each parses with the product's parser."""
    world = World(pc, ctl, s3)
    state = row.setup(world)
    ctl("events", method="DELETE")
    row.act(world, state)
    events = ctl("events", method="GET")["events"]
    assert Counter(e["detail-type"] for e in events) == Counter(row.events)
    for event in events:
        parsed = parse_event(event)
        # The product's parser understands every event the emulator emits and finds what it names.
        assert not parsed.ignored, (event["detail-type"], parsed.reason)
        assert parsed.opportunity_ids or parsed.invitation_ids or parsed.engagement_ids


MUTATING_PREFIXES = (
    "Accept",
    "Assign",
    "Associate",
    "Create",
    "Delete",
    "Disassociate",
    "Put",
    "Reject",
    "Start",
    "Stop",
    "Submit",
    "Tag",
    "Untag",
    "Update",
)


def test_every_mutating_operation_has_a_row() -> None:
    """The table covers every mutating operation of the botocore model (63 operations in all)."""
    model = get_session().get_service_model("partnercentral-selling")
    assert len(model.operation_names) == 63
    mutating = {op for op in model.operation_names if op.startswith(MUTATING_PREFIXES)}
    covered = {row.change.split()[0] for row in ROWS}
    assert mutating - covered == set()
    assert len(mutating) == 29
