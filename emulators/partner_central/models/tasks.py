"""Asynchronous tasks: the pending-task machinery and the four task kinds.

Tasks finish ``task_delay_ms`` after they start (timers, and ``run_due_tasks`` before each request):
EngagementFromOpportunity (submit and engage), EngagementByAcceptingInvitation (accept a referral),
OpportunityFromEngagement and ProspectingFromEngagement.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from emulators.partner_central.exceptions import (
    AccessDeniedException,
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from emulators.partner_central.models.base import AWS_ACCOUNT, get_path, paginate, parse_ts
from emulators.partner_central.models.invitations import InvitationsMixin
from emulators.partner_central.models.opportunity_rules import PARTNER_FIELDS
from emulators.partner_central.models.snapshots import SnapshotsMixin

DEFAULT_TEMPLATE = "AWSOpportunitySummary"


class TasksMixin(SnapshotsMixin, InvitationsMixin):
    """The Start*/List*/Get* task operations."""

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
        """Finish every task whose time has come (called before each request and by timers)."""
        with self.lock:
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

    def start_engagement_by_accepting_invitation(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartEngagementByAcceptingInvitationTask: accept an AWS referral and get an opportunity for it."""

        def action() -> dict[str, Any]:
            with self.lock:
                catalog = params["Catalog"]
                inv = self.invitation(catalog, params["Identifier"])
                task = self._new_task(
                    catalog, "EngagementByAcceptingInvitation", {"EngagementInvitationId": inv["Id"]}
                )
                if params.get("Tags"):
                    self.tags[task["TaskArn"]] = {t["Key"]: t["Value"] for t in params["Tags"]}
                return copy.deepcopy(task) | {"TaskStatus": "IN_PROGRESS"}

        return self.idempotent(params["Catalog"], "StartEngagementByAcceptingInvitationTask", params, action)

    def _finish_EngagementByAcceptingInvitation(self, catalog: str, task: dict[str, Any]) -> None:
        inv = self.invitation(catalog, task["EngagementInvitationId"])
        try:
            inv = self.accept_invitation(catalog, inv["Id"])
        except (ConflictException, AccessDeniedException) as err:
            self._fail(task, "InvitationValidationFailed", err.message)
            return
        payload = inv["Payload"].get("OpportunityInvitation")
        if payload is None:
            task["TaskStatus"] = "COMPLETE"
            return
        cust, proj = payload["Customer"], payload["Project"]
        created = self._create_referral(catalog, cust, proj)
        oid = created["Id"]
        eng = self.engagement(catalog, inv["EngagementId"])
        self.associate_resource(eng, oid, self.account_id)
        self.store(catalog)["aws_summaries"][oid] = {
            "RelatedOpportunityId": oid,
            "Origin": "AWS Referral",
            "InvolvementType": "Co-Sell",
            "Visibility": "Full",
            "LifeCycle": {"Stage": "Prospect"},
        }
        job = self.new_job(catalog, eng["Id"], oid, DEFAULT_TEMPLATE, None, status="Running")
        task.update({"TaskStatus": "COMPLETE", "OpportunityId": oid, "ResourceSnapshotJobId": job["Id"]})

    def _create_referral(self, catalog: str, cust: dict[str, Any], proj: dict[str, Any]) -> dict[str, Any]:
        # AWS itself creates the opportunity for an accepted referral, so the Sandbox-only Origin rule
        # (which governs partner CreateOpportunity calls) does not apply here.
        params = {
            "Customer": {
                "Account": {
                    "CompanyName": cust["CompanyName"],
                    "Industry": cust["Industry"],
                    "WebsiteUrl": cust["WebsiteUrl"],
                    "Address": {"CountryCode": cust["CountryCode"]},
                }
            },
            "Project": {
                "Title": proj["Title"],
                "CustomerBusinessProblem": proj["BusinessProblem"],
                "ExpectedCustomerSpend": proj.get("ExpectedCustomerSpend") or [],
            },
            "OpportunityType": "Net New Business",
            "LifeCycle": {"Stage": "Prospect", "TargetCloseDate": proj["TargetCompletionDate"]},
        }
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
