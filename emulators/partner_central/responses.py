"""One handler per Partner Central operation: take the decoded request, call the backend, return the result.

The server validates every request against the model before a handler runs and projects every result onto
the operation's output shape afterwards, so handlers only carry the mapping between API and state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulators.partner_central.models import PartnerCentralBackend

Handler = Callable[[PartnerCentralBackend, dict[str, Any]], dict[str, Any] | None]


def _get_opportunity(b: PartnerCentralBackend, p: dict[str, Any]) -> dict[str, Any]:
    with b.lock:
        return dict(b.opportunity(p["Catalog"], p["Identifier"]))


def _submit(b: PartnerCentralBackend, p: dict[str, Any]) -> None:
    b.submit_opportunity(p)


def _assign(b: PartnerCentralBackend, p: dict[str, Any]) -> None:
    b.assign_opportunity(p)


def _prospecting_task(b: PartnerCentralBackend, p: dict[str, Any]) -> dict[str, Any]:
    with b.lock:
        task = dict(b.task(p["Catalog"], "ProspectingFromEngagement", p["TaskIdentifier"]))
        task.setdefault(
            "Engagements", [{"EngagementIdentifier": e, "Status": "IN_PROGRESS"} for e in task["Identifiers"]]
        )
        return task


def _list_prospecting(b: PartnerCentralBackend, p: dict[str, Any]) -> dict[str, Any]:
    out = b.list_tasks("ProspectingFromEngagement", p)
    summaries = []
    for t in out["TaskSummaries"]:
        results = t.get("Engagements") or []
        summaries.append(
            {
                **t,
                "TotalEngagementCount": len(t["Identifiers"]),
                "CompletedEngagementCount": sum(r["Status"] == "COMPLETED" for r in results),
                "FailedEngagementCount": sum(r["Status"] == "FAILED" for r in results),
            }
        )
    if (p.get("Sort") or {}).get("SortBy") == "FailedEngagementCount":
        summaries.sort(
            key=lambda t: t["FailedEngagementCount"], reverse=p["Sort"]["SortOrder"] == "DESCENDING"
        )
    return {"TaskSummaries": summaries, "NextToken": out.get("NextToken")}


def _none(action: Callable[[PartnerCentralBackend, dict[str, Any]], Any]) -> Handler:
    def handler(b: PartnerCentralBackend, p: dict[str, Any]) -> None:
        action(b, p)

    return handler


HANDLERS: dict[str, Handler] = {
    # Opportunities
    "CreateOpportunity": lambda b, p: b.create_opportunity(p),
    "GetOpportunity": _get_opportunity,
    "UpdateOpportunity": lambda b, p: b.update_opportunity(p),
    "ListOpportunities": lambda b, p: b.list_opportunities(p),
    "SubmitOpportunity": _submit,
    "AssignOpportunity": _assign,
    "AssociateOpportunity": _none(lambda b, p: b.associate(p, True)),
    "DisassociateOpportunity": _none(lambda b, p: b.associate(p, False)),
    "GetAwsOpportunitySummary": lambda b, p: b.aws_summary(p["Catalog"], p["RelatedOpportunityIdentifier"]),
    # Engagements
    "CreateEngagement": lambda b, p: b.create_engagement(p),
    "GetEngagement": lambda b, p: b.get_engagement(p["Catalog"], p["Identifier"]),
    "ListEngagements": lambda b, p: b.list_engagements(p),
    "CreateEngagementContext": lambda b, p: b.create_engagement_context(p),
    "UpdateEngagementContext": lambda b, p: b.update_engagement_context(p),
    "ListEngagementMembers": lambda b, p: b.list_engagement_members(p),
    "ListEngagementResourceAssociations": lambda b, p: b.list_engagement_resource_associations(p),
    # Invitations
    "CreateEngagementInvitation": lambda b, p: b.create_engagement_invitation(p),
    "GetEngagementInvitation": lambda b, p: b.invitation(p["Catalog"], p["Identifier"]),
    "ListEngagementInvitations": lambda b, p: b.list_invitations(p),
    "AcceptEngagementInvitation": _none(lambda b, p: b.accept_invitation(p["Catalog"], p["Identifier"])),
    "RejectEngagementInvitation": _none(
        lambda b, p: b.reject_invitation(p["Catalog"], p["Identifier"], p.get("RejectionReason"))
    ),
    # Resource snapshots and jobs
    "CreateResourceSnapshot": lambda b, p: b.create_resource_snapshot(p),
    "GetResourceSnapshot": lambda b, p: b.get_resource_snapshot(p),
    "ListResourceSnapshots": lambda b, p: b.list_resource_snapshots(p),
    "CreateResourceSnapshotJob": lambda b, p: b.create_resource_snapshot_job(p),
    "GetResourceSnapshotJob": lambda b, p: b.job(p["Catalog"], p["ResourceSnapshotJobIdentifier"]),
    "ListResourceSnapshotJobs": lambda b, p: b.list_jobs(p),
    "StartResourceSnapshotJob": _none(
        lambda b, p: b.set_job_status(p["Catalog"], p["ResourceSnapshotJobIdentifier"], "Running")
    ),
    "StopResourceSnapshotJob": _none(
        lambda b, p: b.set_job_status(p["Catalog"], p["ResourceSnapshotJobIdentifier"], "Stopped")
    ),
    "DeleteResourceSnapshotJob": _none(
        lambda b, p: b.delete_job(p["Catalog"], p["ResourceSnapshotJobIdentifier"])
    ),
    # Asynchronous tasks
    "StartEngagementFromOpportunityTask": lambda b, p: b.start_engagement_from_opportunity(p),
    "ListEngagementFromOpportunityTasks": lambda b, p: b.list_tasks("EngagementFromOpportunity", p),
    "StartEngagementByAcceptingInvitationTask": lambda b, p: b.start_engagement_by_accepting_invitation(p),
    "ListEngagementByAcceptingInvitationTasks": lambda b, p: b.list_tasks(
        "EngagementByAcceptingInvitation", p
    ),
    "StartOpportunityFromEngagementTask": lambda b, p: b.start_opportunity_from_engagement(p),
    "ListOpportunityFromEngagementTasks": lambda b, p: b.list_tasks("OpportunityFromEngagement", p),
    "StartProspectingFromEngagementTask": lambda b, p: b.start_prospecting(p),
    "GetProspectingFromEngagementTask": _prospecting_task,
    "ListProspectingFromEngagementTasks": _list_prospecting,
    # Search
    "SearchOpportunities": lambda b, p: b.search_opportunities(p),
    "SearchEngagements": lambda b, p: b.search_engagements(p),
    "ListEngagementGroups": lambda b, p: b.list_engagement_groups(p),
    # Bulk jobs
    "StartOpportunityBulkJob": lambda b, p: b.start_opportunity_bulk_job(p),
    "ListOpportunityBulkJobs": lambda b, p: b.list_opportunity_bulk_jobs(p),
    "ListOpportunityBulkJobResults": lambda b, p: b.list_bulk_job_results("opportunity", p),
    "GetOpportunityBulkJobReportUrl": lambda b, p: b.bulk_job_report_url("opportunity", p),
    "StartCustomerAccountBulkJob": lambda b, p: b.start_customer_account_bulk_job(p),
    "GetCustomerAccountBulkJob": lambda b, p: b.get_customer_account_bulk_job(p),
    "ListCustomerAccountBulkJobs": lambda b, p: b.list_customer_account_bulk_jobs(p),
    "ListCustomerAccountBulkJobResults": lambda b, p: b.list_bulk_job_results("customer_account", p),
    "GetCustomerAccountBulkJobReportUrl": lambda b, p: b.bulk_job_report_url("customer_account", p),
    # Solutions, settings, tags
    "ListSolutions": lambda b, p: b.list_solutions(p),
    "GetSellingSystemSettings": lambda b, p: b.get_settings(p["Catalog"]),
    "PutSellingSystemSettings": lambda b, p: b.put_settings(
        p["Catalog"], p.get("ResourceSnapshotJobRoleIdentifier")
    ),
    "TagResource": lambda b, p: (b.tag(p["ResourceArn"], p["Tags"]), {})[1],
    "UntagResource": lambda b, p: (b.untag(p["ResourceArn"], p["TagKeys"]), {})[1],
    "ListTagsForResource": lambda b, p: {"Tags": b.list_tags(p["ResourceArn"])},
    # Customer accounts
    "CreateCustomerAccount": lambda b, p: b.create_customer_account(p),
    "GetCustomerAccount": lambda b, p: b.get_customer_account(p),
    "UpdateCustomerAccount": lambda b, p: b.update_customer_account(p),
    "DeleteCustomerAccount": _none(lambda b, p: b.delete_customer_account(p)),
    "SearchCustomerAccounts": lambda b, p: b.search_customer_accounts(p),
    "GetCustomerAccountStatistics": lambda b, p: b.get_customer_account_statistics(p),
}
