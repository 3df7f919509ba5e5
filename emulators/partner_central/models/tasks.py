"""Asynchronous tasks: the pending-task machinery and the four task kinds.

Tasks finish ``task_delay_ms`` after they start (timers, and ``run_due_tasks`` before each request):
EngagementFromOpportunity (submit and engage), EngagementByAcceptingInvitation (accept a referral),
OpportunityFromEngagement and ProspectingFromEngagement.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from emulators.partner_central import shapes
from emulators.partner_central.exceptions import (
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from emulators.partner_central.models.base import AWS_ACCOUNT, get_path, paginate, parse_ts
from emulators.partner_central.models.invitations import InvitationsMixin
from emulators.partner_central.models.opportunity_rules import PARTNER_FIELDS
from emulators.partner_central.models.snapshots import SnapshotsMixin

DEFAULT_TEMPLATE = "AWSOpportunitySummary"
# The ReasonCode enum of the accept task (model shape ReasonCode); a fault may name any of them.
ACCEPT_REASON_CODES = tuple(shapes.shape("ReasonCode").enum)


class TasksMixin(SnapshotsMixin, InvitationsMixin):
    """The Start*/List*/Get* task operations."""

    def reset(self) -> None:
        """Reset the base state and forget injected accept-task faults."""
        with self.lock:
            super().reset()
            # Injected failures of the next StartEngagementByAcceptingInvitationTask calls:
            # [{"reason_code", "message"}], consumed one per task started (controls /faults/accept-task).
            self.accept_task_faults: list[dict[str, str]] = []

    def configure_accept_task_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        """Make the next ``times`` accept tasks end FAILED with ``reason_code`` (``times`` 0 clears)."""
        with self.lock:
            times = int(body.get("times", 1))
            if times < 0:
                raise ValueError("times must be >= 0")
            if times == 0:
                self.accept_task_faults = []
            else:
                code = body.get("reason_code", "InternalError")
                if code not in ACCEPT_REASON_CODES:
                    raise ValueError(f"reason_code must be one of {list(ACCEPT_REASON_CODES)}")
                message = body.get("message") or f"Injected failure: {code}"
                self.accept_task_faults.extend(
                    {"reason_code": code, "message": message} for _ in range(times)
                )
            return self.accept_task_fault_settings()

    def accept_task_fault_settings(self) -> dict[str, Any]:
        """The failures still queued for the next accept tasks."""
        with self.lock:
            return {
                "pending": [dict(f) for f in self.accept_task_faults],
                "count": len(self.accept_task_faults),
            }

    def _new_task(self, catalog: str, kind: str, fields: dict[str, Any], digits: int = 13) -> dict[str, Any]:
        tid = f"task-{self.rand_id(digits)}"
        segment = {"ProspectingFromEngagement": "prospecting-from-engagement-task"}.get(
            kind,
            f"{kind[0].lower()}{''.join('-' + ch.lower() if ch.isupper() else ch for ch in kind[1:])}-task",
        )
        arn = (
            f"arn:aws:partnercentral-selling:{self.region}:{self.account_id}"
            f":catalog/{catalog}/{segment}/{tid}"
            if kind == "ProspectingFromEngagement"
            else self.make_arn(catalog, segment, tid)
        )
        task = {
            "TaskId": tid,
            "TaskArn": arn,
            "StartTime": self.now(),
            "TaskStatus": "IN_PROGRESS",
            "Catalog": catalog,
            **fields,
        }
        self.store(catalog)["tasks"][kind][tid] = task
        # Tasks are asynchronous: they finish after task_delay_ms (see run_due_tasks).
        self.pending_tasks.append((self.peek_now() + self.task_delay_ms, catalog, kind, tid))
        if self.task_delay_ms > 0:
            timer = threading.Timer(self.task_delay_ms / 1000 + 0.01, self.run_due_tasks)
            timer.daemon = True
            timer.start()
        else:
            self.run_due_tasks()
        return task

    def run_due_tasks(self) -> None:
        """Finish every task whose time has come (called before each request and by timers).

        Invitation expiry is settled first: it is the other thing that happens on the emulator clock.
        """
        with self.lock:
            self.expire_invitations()
            now = self.peek_now()
            due = [p for p in self.pending_tasks if p[0] <= now]
            if not due:
                return
            self.pending_tasks = [p for p in self.pending_tasks if p[0] > now]
            for _, catalog, kind, tid in due:
                task = self.store(catalog)["tasks"][kind].get(tid)
                if task is not None:
                    getattr(self, f"_finish_{kind}")(catalog, task)

    def _fail(self, task: dict[str, Any], code: str, message: str) -> None:
        task.update({"TaskStatus": "FAILED", "ReasonCode": code, "Message": message})

    def start_engagement_from_opportunity(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartEngagementFromOpportunityTask: submits the opportunity to AWS asynchronously."""

        def action() -> dict[str, Any]:
            with self.lock:
                catalog = params["Catalog"]
                self.opportunity(catalog, params["Identifier"])
                task = self._new_task(
                    catalog,
                    "EngagementFromOpportunity",
                    {"OpportunityId": params["Identifier"], "_submission": params["AwsSubmission"]},
                )
                if params.get("Tags"):
                    self.tags[task["TaskArn"]] = {t["Key"]: t["Value"] for t in params["Tags"]}
                return copy.deepcopy(task) | {"TaskStatus": "IN_PROGRESS"}

        return self.idempotent(params["Catalog"], "StartEngagementFromOpportunityTask", params, action)

    def _finish_EngagementFromOpportunity(self, catalog: str, task: dict[str, Any]) -> None:
        rec = self.opportunity_record(catalog, task["OpportunityId"])
        opp = rec.data
        sub = task["_submission"]
        try:
            self.submit_record(rec, sub["InvolvementType"], sub.get("Visibility"))
        except ValidationException as err:
            self._fail(task, "OpportunityValidationFailed", err.message)
            return
        account = get_path(opp, "Customer.Account") or {}
        eng = self.new_engagement(
            catalog,
            (get_path(opp, "Project.Title") or opp["Id"])[:40],
            self.account_id,
            contexts=[
                {
                    "Type": "CustomerProject",
                    "Payload": {
                        "CustomerProject": {
                            "Customer": {
                                "Industry": account.get("Industry", "Other"),
                                "CompanyName": account.get("CompanyName", "Unknown"),
                                "WebsiteUrl": account.get("WebsiteUrl", "https://unknown.example"),
                                "CountryCode": get_path(account, "Address.CountryCode") or "US",
                            },
                            "Project": {
                                "Title": get_path(opp, "Project.Title") or opp["Id"],
                                "BusinessProblem": get_path(opp, "Project.CustomerBusinessProblem"),
                                "TargetCompletionDate": get_path(opp, "LifeCycle.TargetCloseDate"),
                            },
                        }
                    },
                }
            ],
        )
        self.associate_resource(eng, opp["Id"], self.account_id)
        self.emit(
            "Engagement Member Added",
            {
                "catalog": catalog,
                "engagement": {"id": eng["Id"]},
                "engagementMember": {"accountId": self.account_id, "companyName": "Example Partner"},
            },
            [eng["Arn"]],
        )
        job = self.new_job(catalog, eng["Id"], opp["Id"], DEFAULT_TEMPLATE, None, status="Running")
        self.take_snapshot(catalog, eng["Id"], opp["Id"], DEFAULT_TEMPLATE)
        job["LastSuccessfulExecutionDate"] = self.peek_now()
        inv = self.new_invitation(
            catalog,
            eng,
            {
                "OpportunityInvitation": {
                    "ReceiverResponsibilities": ["Co-Sell Facilitator"],
                    "Customer": eng["Contexts"][0]["Payload"]["CustomerProject"]["Customer"],
                    "Project": {
                        "Title": get_path(opp, "Project.Title"),
                        "BusinessProblem": get_path(opp, "Project.CustomerBusinessProblem"),
                        "TargetCompletionDate": get_path(opp, "LifeCycle.TargetCloseDate"),
                        "ExpectedCustomerSpend": get_path(opp, "Project.ExpectedCustomerSpend") or [],
                    },
                }
            },
            self.account_id,
            "Example Partner",
            AWS_ACCOUNT,
            "SENDER",
            "Co-sell request",
        )
        task.update(
            {
                "TaskStatus": "COMPLETE",
                "EngagementId": eng["Id"],
                "ResourceSnapshotJobId": job["Id"],
                "EngagementInvitationId": inv["Id"],
            }
        )

    def on_aws_review(self, opp: dict[str, Any], review_status: str) -> None:
        """AWS's review answers the co-sell invitation ``StartEngagementFromOpportunityTask`` sent it.

        Developer guide, "Event scenarios": "AWS approves your submitted opportunity" -> Engagement Invitation
        Accepted, Engagement Member Added, Opportunity Updated, Engagement Resource Snapshot Created; "AWS
        rejects your submitted opportunity" -> Engagement Invitation Rejected, Opportunity Updated, Engagement
        Resource Snapshot Created. Here: ``Approved`` accepts the PENDING invitation (AWS joins the
        engagement), ``Rejected`` rejects it; the opportunity events follow from the review itself. Other
        review statuses, and opportunities submitted with ``SubmitOpportunity`` (no engagement, no
        invitation), change nothing here.
        """
        super().on_aws_review(opp, review_status)
        if review_status not in ("Approved", "Rejected"):
            return
        store = self.store(opp["Catalog"])
        for eng in store["engagements"].values():
            if not any(r["ResourceId"] == opp["Id"] for r in eng["Resources"]):
                continue
            for inv in store["invitations"].values():
                pending_to_aws = (
                    inv["EngagementId"] == eng["Id"]
                    and inv["ParticipantType"] == "SENDER"
                    and inv["Status"] == "PENDING"
                    and inv["Receiver"]["Account"]["AwsAccountId"] == AWS_ACCOUNT
                )
                if not pending_to_aws:
                    continue
                if review_status == "Rejected":
                    inv["Status"] = "REJECTED"
                    self._invitation_event("Engagement Invitation Rejected", inv)
                    continue
                inv["Status"] = "ACCEPTED"
                self._invitation_event("Engagement Invitation Accepted", inv)
                if not any(m.get("AccountId") == AWS_ACCOUNT for m in eng["Members"]):
                    aws = {
                        "CompanyName": "Amazon Web Services",
                        "WebsiteUrl": "https://aws.amazon.com",
                        "AccountId": AWS_ACCOUNT,
                    }
                    eng["Members"].append(aws)
                    # As for any member joining: ModifiedAt moves, no Engagement Updated (docs/api-rules.md).
                    eng["ModifiedAt"], eng["ModifiedBy"] = self.now(), AWS_ACCOUNT
                    self.member_added_event(eng, aws)

    def start_engagement_by_accepting_invitation(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartEngagementByAcceptingInvitationTask: accept a referral; the task finishes asynchronously.

        Synchronous checks: an unknown invitation is ``ResourceNotFoundException``; an invitation already
        ``ACCEPTED``, or with another accept task still ``IN_PROGRESS``, is ``ConflictException`` (so there is
        never a second opportunity). The same ``ClientToken`` and body returns the same task (its current
        state); the token with another body is ``ConflictException``. Everything else is decided when the task
        finishes (``_finish_EngagementByAcceptingInvitation``).
        """

        def action() -> dict[str, Any]:
            with self.lock:
                catalog = params["Catalog"]
                self.expire_invitations()
                inv = self.invitation(catalog, params["Identifier"])
                if inv["Status"] == "ACCEPTED":
                    raise ConflictException(f"Invitation {inv['Id']} has already been accepted")
                running = [
                    t["TaskId"]
                    for t in self.store(catalog)["tasks"]["EngagementByAcceptingInvitation"].values()
                    if t["EngagementInvitationId"] == inv["Id"] and t["TaskStatus"] == "IN_PROGRESS"
                ]
                if running:
                    raise ConflictException(
                        f"Invitation {inv['Id']} is already being accepted by task {running[0]}"
                    )
                fields: dict[str, Any] = {"EngagementInvitationId": inv["Id"]}
                if self.accept_task_faults:
                    fields["_fault"] = self.accept_task_faults.pop(0)
                task = self._new_task(catalog, "EngagementByAcceptingInvitation", fields)
                if params.get("Tags"):
                    self.tags[task["TaskArn"]] = {t["Key"]: t["Value"] for t in params["Tags"]}
                return copy.deepcopy(task) | {"TaskStatus": "IN_PROGRESS"}

        first = self.idempotent(params["Catalog"], "StartEngagementByAcceptingInvitationTask", params, action)
        with self.lock:
            # A replayed token answers with the task as it is now (it may have finished meanwhile).
            current = self.store(params["Catalog"])["tasks"]["EngagementByAcceptingInvitation"].get(
                first["TaskId"]
            )
            return copy.deepcopy(current) if current is not None else first

    def _finish_EngagementByAcceptingInvitation(self, catalog: str, task: dict[str, Any]) -> None:
        """Accept the invitation; for an opportunity invitation create, link and summarise the opportunity.

        Order of checks: an injected fault (``/_emulator/faults/accept-task``); an invitation this partner
        sent (``InvitationAccessDenied``); one no longer PENDING: ``EngagementInvitationConflict`` when it was
        accepted meanwhile, else ``InvitationValidationFailed`` (rejected, expired, withdrawn). A failed task
        changes nothing.
        """
        inv = self.invitation(catalog, task["EngagementInvitationId"])
        fault = task.pop("_fault", None)
        if fault:
            self._fail(task, fault["reason_code"], fault["message"])
            return
        if inv["ParticipantType"] != "RECEIVER":
            self._fail(task, "InvitationAccessDenied", f"Invitation {inv['Id']} was sent by this account")
            return
        if inv["Status"] != "PENDING":
            code = (
                "EngagementInvitationConflict"
                if inv["Status"] == "ACCEPTED"
                else "InvitationValidationFailed"
            )
            self._fail(task, code, f"Invitation {inv['Id']} is {inv['Status']}, not PENDING")
            return
        inv = self.accept_invitation(catalog, inv["Id"])
        payload = inv["Payload"].get("OpportunityInvitation")
        if payload is None:
            # A LeadInvitation carries no AWS opportunity: accepting joins the engagement (its Lead context);
            # StartOpportunityFromEngagementTask turns the lead into an opportunity later.
            task["TaskStatus"] = "COMPLETE"
            return
        created = self._create_referral(catalog, payload, inv.get("_customer_details") or {})
        oid = created["Id"]
        eng = self.engagement(catalog, inv["EngagementId"])
        self.associate_resource(eng, oid, self.account_id)
        proj = payload["Project"]
        self.store(catalog)["aws_summaries"][oid] = {
            "RelatedOpportunityId": oid,
            "Origin": "AWS Referral",
            "InvolvementType": "Co-Sell",
            "Visibility": "Full",
            "LifeCycle": {"Stage": "Prospect", "TargetCloseDate": proj["TargetCompletionDate"]},
            "OpportunityTeam": [
                {
                    "Email": c["Email"],
                    "FirstName": c.get("FirstName"),
                    "LastName": c.get("LastName"),
                    # SenderContacts titles are free text; the AWS team's BusinessTitle is an enum.
                    "BusinessTitle": "AWSSalesRep",
                }
                for c in payload.get("SenderContacts") or []
            ],
            "Project": {"ExpectedCustomerSpend": copy.deepcopy(proj.get("ExpectedCustomerSpend") or [])},
        }
        # "Copying details for tracking" (API reference): a running snapshot job on the new opportunity and
        # its first snapshot; the developer guide lists Opportunity Updated and Engagement Resource Snapshot
        # Created among the events of an acceptance.
        job = self.new_job(catalog, eng["Id"], oid, DEFAULT_TEMPLATE, None, status="Running")
        self.take_snapshot(catalog, eng["Id"], oid, DEFAULT_TEMPLATE)
        job["LastSuccessfulExecutionDate"] = self.peek_now()
        self.opportunity_event("Opportunity Updated", self.opportunity(catalog, oid))
        task.update({"TaskStatus": "COMPLETE", "OpportunityId": oid, "ResourceSnapshotJobId": job["Id"]})

    def _create_referral(
        self, catalog: str, payload: dict[str, Any], details: dict[str, Any]
    ) -> dict[str, Any]:
        """The partner opportunity for an accepted OpportunityInvitation (with ``Opportunity Created``)."""
        # AWS itself creates the opportunity for an accepted referral, so the Sandbox-only Origin rule
        # (which governs partner CreateOpportunity calls) does not apply here.
        cust, proj = payload["Customer"], payload["Project"]
        account: dict[str, Any] = {
            "CompanyName": cust["CompanyName"],
            "Industry": cust["Industry"],
            "WebsiteUrl": cust["WebsiteUrl"],
            "Address": {**copy.deepcopy(details.get("Address") or {}), "CountryCode": cust["CountryCode"]},
        }
        if details.get("AwsAccountId"):
            account["AwsAccountId"] = details["AwsAccountId"]
        params = {
            "Customer": {"Account": account, "Contacts": copy.deepcopy(details.get("Contacts") or [])},
            "Project": {
                "Title": proj["Title"],
                "CustomerBusinessProblem": proj["BusinessProblem"],
                "ExpectedCustomerSpend": proj.get("ExpectedCustomerSpend") or [],
            },
            "OpportunityType": payload.get("OpportunityType") or "Net New Business",
            "LifeCycle": {"Stage": "Prospect", "TargetCloseDate": proj["TargetCompletionDate"]},
        }
        if not params["Customer"]["Contacts"]:
            del params["Customer"]["Contacts"]
        store = self.store(catalog)
        oid = self.new_opportunity_id(catalog)
        now = self.now()
        record = {k: copy.deepcopy(params[k]) for k in PARTNER_FIELDS if k in params}
        record.update(
            {
                "Catalog": catalog,
                "Id": oid,
                "Arn": self.make_arn(catalog, "opportunity", oid),
                "CreatedDate": now,
                "LastModifiedDate": now,
                "RelatedEntityIdentifiers": {},
                "Origin": "AWS Referral",
            }
        )
        store["opportunities"][oid] = record
        self.touch()
        self.opportunity_event("Opportunity Created", record)
        return {"Id": oid}

    def start_opportunity_from_engagement(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartOpportunityFromEngagementTask: an opportunity from an engagement context."""

        def action() -> dict[str, Any]:
            with self.lock:
                eng = self.engagement(params["Catalog"], params["Identifier"])
                task = self._new_task(
                    params["Catalog"],
                    "OpportunityFromEngagement",
                    {"EngagementId": eng["Id"], "ContextId": params["ContextIdentifier"]},
                )
                return copy.deepcopy(task) | {"TaskStatus": "IN_PROGRESS"}

        return self.idempotent(params["Catalog"], "StartOpportunityFromEngagementTask", params, action)

    def _finish_OpportunityFromEngagement(self, catalog: str, task: dict[str, Any]) -> None:
        eng = self.engagement(catalog, task["EngagementId"])
        ctx = next((c for c in eng["Contexts"] if c["Id"] == task["ContextId"]), None)
        if ctx is None:
            self._fail(task, "ContextNotFound", f"Context {task['ContextId']} not found in {eng['Id']}")
            return
        if ctx["Type"] == "CustomerProject":
            cp = ctx["Payload"].get("CustomerProject") or {}
            cust, proj = cp.get("Customer") or {}, cp.get("Project") or {}
            account = {
                "CompanyName": cust.get("CompanyName", "Unknown"),
                "Industry": cust.get("Industry"),
                "WebsiteUrl": cust.get("WebsiteUrl"),
                "Address": {"CountryCode": cust.get("CountryCode")},
            }
            project = {"Title": proj.get("Title"), "CustomerBusinessProblem": proj.get("BusinessProblem")}
            close = proj.get("TargetCompletionDate")
        elif ctx["Type"] == "Lead":
            lead = ctx["Payload"].get("Lead") or {}
            if (lead.get("QualificationStatus") or "").lower() == "disqualified":
                self._fail(
                    task, "DisqualifiedLeadNotPermitted", "Disqualified leads cannot become opportunities"
                )
                return
            cust = lead.get("Customer") or {}
            account = {
                "CompanyName": cust.get("CompanyName", "Unknown"),
                "WebsiteUrl": cust.get("WebsiteUrl"),
            }
            project, close = {}, None
        else:
            self._fail(
                task, "CustomerProjectContextNotPermitted", f"Context type {ctx['Type']} is not supported"
            )
            return
        store = self.store(catalog)
        oid = self.new_opportunity_id(catalog)
        now = self.now()
        record = {
            "Catalog": catalog,
            "Id": oid,
            "Arn": self.make_arn(catalog, "opportunity", oid),
            "CreatedDate": now,
            "LastModifiedDate": now,
            "RelatedEntityIdentifiers": {},
            "Origin": "Partner Referral",
            "Customer": {"Account": {k: v for k, v in account.items() if v}},
            "Project": {k: v for k, v in project.items() if v},
            "LifeCycle": {
                "ReviewStatus": "Pending Submission",
                **({"TargetCloseDate": close} if close else {}),
            },
        }
        store["opportunities"][oid] = record
        self.associate_resource(eng, oid, self.account_id)
        self.touch()
        self.opportunity_event("Opportunity Created", record)
        task.update({"TaskStatus": "COMPLETE", "OpportunityId": oid})

    def start_prospecting(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartProspectingFromEngagementTask: enrich engagements (IN_PROGRESS -> COMPLETED)."""

        def action() -> dict[str, Any]:
            with self.lock:
                task = self._new_task(
                    params["Catalog"],
                    "ProspectingFromEngagement",
                    {"TaskName": params["TaskName"], "Identifiers": list(params["Identifiers"])},
                    digits=14,
                )
                task["TaskStatus"] = "IN_PROGRESS"
                return copy.deepcopy(task)

        return self.idempotent(params["Catalog"], "StartProspectingFromEngagementTask", params, action)

    def _finish_ProspectingFromEngagement(self, catalog: str, task: dict[str, Any]) -> None:
        results = []
        for eid in task["Identifiers"]:
            eng = self.store(catalog)["engagements"].get(eid)
            if eng is None:
                results.append(
                    {
                        "EngagementIdentifier": eid,
                        "Status": "FAILED",
                        "ReasonCode": "EngagementAccessDenied",
                        "Message": f"Engagement {eid} not found",
                    }
                )
            else:
                results.append(
                    {
                        "EngagementIdentifier": eid,
                        "Status": "COMPLETED",
                        "EngagementContextId": f"ctx-{self.rand_id(14)}",
                    }
                )
        task.update({"TaskStatus": "COMPLETED", "EndTime": self.now(), "Engagements": results})

    def list_tasks(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """List*Tasks with their common filters, sorted by StartTime (default DESCENDING)."""
        with self.lock:
            id_filters = {
                "TaskIdentifier": "TaskId",
                "OpportunityIdentifier": "OpportunityId",
                "EngagementIdentifier": "EngagementId",
                "EngagementInvitationIdentifier": "EngagementInvitationId",
                "ContextIdentifier": "ContextId",
                "TaskName": "TaskName",
            }
            items = []
            for task in self.store(params["Catalog"])["tasks"][kind].values():
                if params.get("TaskStatus") and task["TaskStatus"] not in params["TaskStatus"]:
                    continue
                ok = True
                for param, field in id_filters.items():
                    wanted = params.get(param)
                    if wanted and str(task.get(field)) not in {w.rsplit("/", 1)[-1] for w in wanted}:
                        ok = False
                if params.get("StartAfter") and task["StartTime"] < parse_ts(params["StartAfter"]):
                    ok = False
                if params.get("StartBefore") and task["StartTime"] > parse_ts(params["StartBefore"]):
                    ok = False
                if ok:
                    items.append(task)
            sort = params.get("Sort") or {}
            order = sort.get("SortOrder", "DESCENDING")
            by = sort.get("SortBy", "StartTime")
            items.sort(
                key=lambda t: (
                    str(t.get(by, t["StartTime"])) if by == "TaskName" else t["StartTime"],
                    t["TaskId"],
                ),
                reverse=order == "DESCENDING",
            )
            return dict(zip(("TaskSummaries", "NextToken"), paginate(items, params, 100), strict=True))

    def task(self, catalog: str, kind: str, identifier: str) -> dict[str, Any]:
        """A task or ``ResourceNotFoundException``."""
        task = self.store(catalog)["tasks"][kind].get(identifier.rsplit("/", 1)[-1])
        if task is None:
            raise ResourceNotFoundException(f"Task {identifier} not found in catalog {catalog}")
        return task
