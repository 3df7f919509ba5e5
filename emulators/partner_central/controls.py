"""Test controls under ``/_emulator/``, kept apart from the emulated API (like moto's ``/moto-api/``).

They reset and seed state, read call counts, inject faults, tune quotas, and play AWS's side of the
co-sell process (review decisions, referrals, console edits).
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from emulators.partner_central.instruments import CallLog, Faults
from emulators.partner_central.models import PartnerCentralBackend
from emulators.partner_central.quotas import Quotas
from emulators.partner_central.seed import seed_engagements, seed_opportunities

__all__ = ["ControlledApp", "Faults", "handle"]


class ControlledApp(Protocol):
    """What the controls need of the app (``server.PartnerCentralApp`` provides it)."""

    backend: PartnerCentralBackend
    quotas: Quotas
    faults: Faults
    calls: CallLog

    def reset(self) -> None:
        """Back to a fresh emulator."""


def handle(
    app: ControlledApp, method: str, path: str, body: dict[str, Any], query: dict[str, str]
) -> tuple[int, Any]:
    """Route one control request; returns (status, JSON body)."""
    b = app.backend
    route = path[len("/_emulator") :].rstrip("/")
    if route == "/reset" and method == "POST":
        app.reset()
        return 200, {"reset": True}
    if route == "/health":
        return 200, {"ok": True}
    if route == "/seed" and method == "POST":
        started = time.perf_counter()
        ids = seed_opportunities(
            b, int(body.get("opportunities", 0)), int(body.get("seed", 0)), body.get("catalog", "AWS")
        )
        out: dict[str, Any] = {"opportunity_ids": ids}
        if body.get("engagements"):
            # AWS-shared engagements (leads) for SearchEngagements and the engagement groups.
            out["engagement_ids"] = seed_engagements(
                b, int(body["engagements"]), int(body.get("seed", 0)), body.get("catalog", "AWS")
            )
        return 200, {**out, "seconds": round(time.perf_counter() - started, 3)}
    if route == "/calls":
        if method == "DELETE":
            app.calls.reset()
            return 200, {"reset": True}
        return 200, app.calls.snapshot()
    if route == "/faults":
        if method == "POST":
            app.faults.configure(body)
        return 200, app.faults.settings()
    if route == "/quotas":
        if method == "POST":
            current = app.quotas.settings()
            app.quotas.configure(
                bool(body.get("enabled", current["enabled"])),
                float(body.get("time_scale", current["time_scale"])),
            )
        return 200, app.quotas.settings()
    if route == "/config" and method == "POST":
        if "task_delay_ms" in body:
            b.task_delay_ms = int(body["task_delay_ms"])
        if "events_enabled" in body:
            b.events.enabled = bool(body["events_enabled"])
        if "search_enabled" in body:
            # False: SearchOpportunities answers AccessDeniedException SEARCH_OPPORTUNITIES_NOT_ENABLED.
            b.search_enabled = bool(body["search_enabled"])
        if "settings_access" in body:
            # False: Get/PutSellingSystemSettings answer AccessDeniedException (no IAM permission).
            b.settings_access = bool(body["settings_access"])
        # Customer accounts: emulator time until a match finishes, and an optional per-catalog account limit.
        if "enrichment_delay_ms" in body:
            b.enrichment_delay_ms = int(body["enrichment_delay_ms"])
        if "customer_account_limit" in body:
            limit = body["customer_account_limit"]
            b.customer_account_limit = None if limit is None else int(limit)
        # Bulk jobs: on/off, processing rate, report delay, S3 endpoint for s3:// FileURIs (bulk_jobs.py).
        b.configure_bulk(body)
        return 200, {
            **b.bulk_settings(),
            "task_delay_ms": b.task_delay_ms,
            "events_enabled": b.events.enabled,
            "search_enabled": b.search_enabled,
            "settings_access": b.settings_access,
            "enrichment_delay_ms": b.enrichment_delay_ms,
            "customer_account_limit": b.customer_account_limit,
        }
    if route == "/clock" and method == "POST":
        # Lets tests reach e.g. invitation expiry (15 days) without waiting.
        with b.lock:
            b.clock_offset_ms += int(float(body.get("advance_seconds", 0)) * 1000)
        b.run_due_tasks()
        b.expire_invitations()
        return 200, {"clock_offset_ms": b.clock_offset_ms}
    if route == "/events":
        if method == "DELETE":
            b.events.clear()
            return 200, {"cleared": True}
        events = b.events.events()
        if query.get("detail-type"):
            events = [e for e in events if e["detail-type"] == query["detail-type"]]
        return 200, {"events": events, "count": len(events)}
    if route == "/event-target" and method == "POST":
        b.events.set_target(body.get("url"), body.get("headers"))
        return 200, {"url": body.get("url")}
    if route == "/simulate/review" and method == "POST":
        b.run_due_tasks()
        return 200, b.simulate_review(
            body.get("catalog", "AWS"),
            body["identifier"],
            body["review_status"],
            body.get("review_comments") or body.get("feedback"),
            body.get("review_status_reason"),
        )
    if route == "/simulate/aws-referral" and method == "POST":
        # {"catalog", "kind": "opportunity" (default) | "lead", "payload": {...overrides}} (invitations.py).
        b.run_due_tasks()
        return 200, b.simulate_aws_referral(
            body.get("catalog", "AWS"), body.get("payload"), body.get("kind", "opportunity")
        )
    # --- Referral and engagement lifecycle (docs/api-rules.md, "Partner Central referrals and engagement
    # lifecycle"): AWS withdraws an invitation, members join, AWS edits the engagement or its AWS summary.
    if route == "/simulate/withdraw-invitation" and method == "POST":
        b.run_due_tasks()
        return 200, b.withdraw_invitation(
            body.get("catalog", "AWS"), body["identifier"], body.get("status", "EXPIRED")
        )
    if route == "/faults/refuse":
        # {"operation", "code", "message", "times"}: that operation is refused (times 0 lifts it).
        if method == "POST":
            return 200, {"refusals": app.faults.refuse(body)}
        return 200, {"refusals": dict(app.faults.refusals)}
    if route == "/faults/accept-task":
        # The next `times` StartEngagementByAcceptingInvitationTask tasks end FAILED with `reason_code`.
        if method == "POST":
            return 200, b.configure_accept_task_faults(body)
        return 200, b.accept_task_fault_settings()
    if route == "/simulate/engagement-member" and method == "POST":
        b.run_due_tasks()
        return 200, b.simulate_engagement_member(
            body.get("catalog", "AWS"), body["engagement_id"], body.get("member") or {}
        )
    if route == "/simulate/engagement-update" and method == "POST":
        b.run_due_tasks()
        changes = {k: v for k, v in body.items() if k not in ("catalog", "engagement_id")}
        return 200, b.simulate_engagement_update(body.get("catalog", "AWS"), body["engagement_id"], changes)
    if route == "/simulate/aws-summary" and method == "POST":
        b.run_due_tasks()
        changes = {k: v for k, v in body.items() if k not in ("catalog", "opportunity_id")}
        return 200, b.simulate_aws_summary(body.get("catalog", "AWS"), body["opportunity_id"], changes)
    if route == "/simulate/aws-tags" and method == "POST":
        # {"resource_arn", "tags": {"aws:key": "value" | null}}: AWS's own tags (partners cannot set them).
        b.set_aws_tags(body["resource_arn"], body.get("tags") or {})
        return 200, {"tags": b.list_tags(body["resource_arn"])}
    if route == "/simulate/aws-update" and method == "POST":
        fields = {k: v for k, v in body.items() if k not in ("catalog", "identifier")}
        return 200, b.simulate_aws_update(body.get("catalog", "AWS"), body["identifier"], fields)
    if route == "/simulate/snapshot-job-failure" and method == "POST":
        # {"catalog", "job_id", "message"}: the resource snapshot job's execution fails (its LastFailure).
        message = body.get("message") or "Resource snapshot job execution failed"
        return 200, b.fail_job(body.get("catalog", "AWS"), body["job_id"], message)
    if route == "/solutions" and method == "POST":
        # {"catalog", "solutions": [{"Id"?, "Name", "Category", "Status"}], "remove": ["S-..."]}.
        return 200, b.put_solutions(
            body.get("catalog", "AWS"), body.get("solutions") or [], body.get("remove") or []
        )
    if route == "/customer-directory":
        # The AWS customer directory customer account matching looks domains and DUNS numbers up in.
        if method == "POST":
            return 200, b.add_directory_entry(body)
        return 200, {"entries": b.directory_entries()}
    if route == "/simulate/insights" and method == "POST":
        # AWS re-scores an opportunity; its LastModifiedDate does not move (insights are AWS's computation).
        changes = {k: v for k, v in body.items() if k not in ("catalog", "opportunity_id")}
        return 200, b.simulate_insights(body.get("catalog", "AWS"), body["opportunity_id"], changes)
    if route.startswith("/reports/") and method == "GET":
        # Bulk job report downloads (the URLs Get*BulkJobReportUrl hands out): CSV bytes, 403 once expired.
        parts = route[len("/reports/") :].split("/")
        if len(parts) != 4:
            return 404, {"error": f"no report {path}"}
        return b.bulk_report_content(*parts)
    if route == "/state" and method == "GET":
        return 200, json.loads(json.dumps(b.dump(), default=str))
    return 404, {"error": f"no control {method} {path}"}
