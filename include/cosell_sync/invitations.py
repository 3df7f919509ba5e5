"""AWS referrals: engagement invitations addressed to us become HubSpot deals; the seller answers there.

Two steps of every ``cosell_reconcile`` run (and of ``cosell_invitation``), before the extract. With
``events.enabled`` a scheduled run lists invitations only every ``invitations.backstop_minutes``
(``cosell_sync.polling``); invitation events list them at once:

:func:`sync_invitations`
    lists the invitations addressed to us (``ListEngagementInvitations``, ``ParticipantType=RECEIVER``)
    and reads the deals made for them (one batch read by the unique ``aws_invitation_id``). Then:

    * a new PENDING opportunity invitation becomes a deal (upsert on ``aws_invitation_id``: created once,
      whatever retries or redelivered events do) in the configured pipeline and stage, owned by the
      configured owner, with its customer company and AWS sender contacts, and a task for the owner;
    * a lead invitation becomes a contact (upsert on e-mail) with its company; other payload types are
      logged and audited, never an error;
    * the seller's decision on the deal (``aws_invitation_action``) goes to Partner Central: **Accept**
      starts ``StartEngagementByAcceptingInvitationTask`` (ClientToken from the invitation: the same task
      comes back, never a second acceptance), **Reject** calls ``RejectEngagementInvitation`` with
      ``aws_rejection_reason`` and closes the deal as lost;
    * an invitation that expired (or was withdrawn) closes its deal as lost with the reason; the owner
      gets a task ``invitations.reminder_days`` before the expiry;
    * the deal mirrors the invitation's status.

:func:`finish_invitations`
    after the deferred wait for the accept tasks: a COMPLETE task links the new opportunity to the same
    deal (``aws_opportunity_id``, ``aws_sync_enabled``), which the run then syncs like any other; a FAILED
    one puts its reason in ``aws_sync_error`` and a task for the owner.

A run that dies between the accept call and the link loses nothing: the next run finds the invitation
ACCEPTED and its task by invitation id (``ListEngagementByAcceptingInvitationTasks``), and links the deal.
An accept or reject whose answer was lost (5xx, timeout) is read back before it counts as failed. A deal
gets ``aws_invitation_status`` only once its take-in is complete (company, contacts, owner task): a deal
without it is taken in again by the next run, every write of which is an upsert or found before it is made.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cosell_sync.common import DEAL, parse_ts
from cosell_sync.errors import SyncError
from cosell_sync.polling import lists_invitations, mark_invitations_listed
from cosell_sync.storage import run_key, utc_iso

if TYPE_CHECKING:
    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

INVITATION_ID = "aws_invitation_id"
STATUS = "aws_invitation_status"
EXPIRES = "aws_invitation_expires_at"
SENDER = "aws_invitation_sender"
ACTION = "aws_invitation_action"
REASON = "aws_rejection_reason"
DEAL_PROPERTIES = [
    INVITATION_ID,
    STATUS,
    EXPIRES,
    ACTION,
    REASON,
    "aws_opportunity_id",
    "dealstage",
    "hubspot_owner_id",
]
#: ``RejectEngagementInvitation.RejectionReason``: 1-80 printable characters.
MAX_REASON = 80
#: Accept-task states after which nothing changes.
TASK_DONE = ("COMPLETE", "FAILED")


def _list_invitations(env: SyncEnv, calls: Counter[str]) -> list[dict[str, Any]]:
    out = []
    for page in env.partner_central.paginate("list_engagement_invitations", ParticipantType="RECEIVER"):
        calls["ListEngagementInvitations"] += 1
        out += page.get("EngagementInvitationSummaries") or []
    return out


def _ts(value: Any) -> datetime | None:
    """A timestamp as boto3 returns it (datetime) or as stored (ISO text), timezone-aware."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_ts(str(value))


def _audit(
    run: dict[str, Any], deal_id: str | None, invitation_id: str, action: str, **fields: Any
) -> dict[str, Any]:
    """One audit entry (as a dict; built into an ``AuditEntry`` at the end of the step)."""
    return {
        "deal_id": deal_id or f"invitation-{invitation_id}",
        "opportunity_id": fields.pop("opportunity_id", None),
        "action": action,
        "metadata": {"invitationId": invitation_id, **fields.pop("metadata", {})},
        **fields,
    }


def sync_invitations(
    env: SyncEnv,
    run: dict[str, Any],
    only: set[str] | None = None,
    decisions: dict[str, tuple[str, str | None]] | None = None,
) -> dict[str, Any]:
    """Referrals in, decisions out (see the module doc).

    Args:
        env: clients and stores.
        run: the run description.
        only: these invitations only (``cosell_invitation``); None: every invitation addressed to us.
        decisions: invitation id -> (``Accept`` | ``Reject``, rejection reason), taken over what the deal
            says and written on the deal too (``cosell_invitation``).

    Returns:
        ``key`` of the stored result, ``tasks`` (accept-task ids to wait for) and ``counts``.
    """
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.writers.hubspot import HubSpotWriter

    cfg = env.config.invitations
    if not cfg.enabled:
        return {"key": None, "tasks": [], "counts": {}, "skipped": "invitations.enabled is false"}
    if run.get("opportunity_ids") and only is None:
        # A run restricted to some opportunities touches nothing else.
        return {"key": None, "tasks": [], "counts": {}, "skipped": "run restricted to opportunity_ids"}
    if only is None and not lists_invitations(run):
        # events.enabled: invitation events start cosell_events, which lists them; a scheduled run lists
        # them only every invitations.backstop_minutes (cosell_sync.polling).
        reason = run["polling"]["invitations"]["reason"]
        log.info("Invitations not listed: %s", reason)
        return {"key": None, "tasks": [], "counts": {}, "skipped": reason}
    calls: Counter[str] = Counter()
    gw = HubSpotGateway(env.hubspot)
    writer = HubSpotWriter(env.config, gw)
    invitations = {i["Id"]: i for i in _list_invitations(env, calls) if only is None or i["Id"] in only}
    if only is not None and set(only) - set(invitations):
        from cosell_sync.errors import NotFoundError

        raise NotFoundError(
            f"no invitation addressed to this account in catalog {env.catalog}: "
            f"{', '.join(sorted(set(only) - set(invitations)))}",
            service="partner_central",
        )
    found, _errors = gw.batch_read(DEAL.plural, list(invitations), DEAL_PROPERTIES, id_property=INVITATION_ID)
    deals = {str((d.get("properties") or {}).get(INVITATION_ID)): d for d in found}
    # Decisions on deals whose invitation no longer lists (another catalog?) are left alone.
    out: dict[str, Any] = {
        "created": {},
        "leads": [],
        "ignored": [],
        "accepting": {},
        "rejected": [],
        "closed": {},
        "reminded": [],
        "failed": {},
        "audit": [],
    }
    if run.get("dry_run"):
        pending = [i for i in invitations.values() if _to_take_in(i, deals)]
        log.info(
            "Dry run: %d invitations, %d new and pending; nothing written.", len(invitations), len(pending)
        )
        return {"key": None, "tasks": [], "counts": {"invitations": len(invitations), "new": len(pending)}}

    new = [i for i in invitations.values() if _to_take_in(i, deals)]
    leads = [i["Id"] for i in new if i.get("PayloadType") == "LeadInvitation"]
    if leads:
        # Leads taken in by an earlier run have their contact already (one read per 100 leads).
        from cosell_sync.common import CONTACT

        have, _ = gw.batch_read(
            CONTACT.plural, [f"lead:{i}" for i in leads], ["aws_created_for"], id_property="aws_created_for"
        )
        known = {str((c.get("properties") or {}).get("aws_created_for"))[len("lead:") :] for c in have}
        new = [i for i in new if i["Id"] not in known]
    for inv in new:
        try:
            _take_in(env, gw, inv, out, run, calls)
        except SyncError as err:
            log.error("Invitation %s not taken in: %s", inv["Id"], err.message)
            out["failed"][inv["Id"]] = err.to_dict()
    incomplete = set(out["failed"])
    if out["created"]:
        # The new deals, as the decisions below read them.
        fresh, _ = gw.batch_read(
            DEAL.plural, list(out["created"]), DEAL_PROPERTIES, id_property=INVITATION_ID
        )
        deals.update({str((d.get("properties") or {}).get(INVITATION_ID)): d for d in fresh})

    # The status marks a complete take-in (see _to_take_in); written with the step's other deal updates.
    updates: dict[str, dict[str, str]] = {d: {STATUS: "PENDING"} for d in out["created"].values()}
    tasks: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for inv_id, deal in deals.items():
        inv = invitations.get(inv_id)
        if inv is None:
            continue
        props = dict(deal.get("properties") or {})
        deal_id = str(deal["id"])
        if decisions and inv_id in decisions:
            chosen, why = decisions[inv_id]
            props[ACTION], props[REASON] = chosen, why or ""
            updates.setdefault(deal_id, {}).update({ACTION: chosen, REASON: (why or "")[:MAX_REASON]})
        status = str(inv.get("Status"))
        action = (props.get(ACTION) or "").strip()
        if props.get("aws_opportunity_id"):
            continue  # accepted and linked: the reconcile run syncs it from now on
        if action == "Accept" and status in ("PENDING", "ACCEPTED"):
            try:
                out["accepting"][inv_id] = _accept(env, inv, deal_id, run, calls, out)
            except SyncError as err:
                log.error("Accepting invitation %s failed: %s", inv_id, err.message)
                out["failed"][inv_id] = err.to_dict()
                updates.setdefault(deal_id, {})["aws_sync_error"] = (
                    f"Accepting the AWS invitation failed: {err.message}"
                )
            continue
        # REJECTED on AWS but not on the deal: an earlier attempt's answer was lost, or its run died before
        # it closed the deal. The deal is closed now, without a second call.
        unrecorded = status == "REJECTED" and props.get(STATUS) != "REJECTED"
        if action == "Reject" and (status == "PENDING" or unrecorded):
            reason = (props.get(REASON) or "").strip()[:MAX_REASON] or "Declined by the partner"
            try:
                if status == "PENDING":
                    calls["RejectEngagementInvitation"] += 1
                    env.partner_central.call(
                        "reject_engagement_invitation", Identifier=inv_id, RejectionReason=reason
                    )
            except SyncError as err:
                if _status_now(env, inv_id, calls) != "REJECTED":
                    log.error("Rejecting invitation %s failed: %s", inv_id, err.message)
                    out["failed"][inv_id] = err.to_dict()
                    updates.setdefault(deal_id, {})["aws_sync_error"] = (
                        f"Rejecting the AWS invitation failed: {err.message}"
                    )
                    continue
                log.warning("Rejecting invitation %s answered %s, but it is rejected.", inv_id, err.code)
            out["rejected"].append(inv_id)
            out["audit"].append(_audit(run, deal_id, inv_id, "REJECT_INVITATION", metadata={"reason": "set"}))
            status = "REJECTED"
            updates.setdefault(deal_id, {}).update(
                {**_closed(cfg.closed_lost_stage, "Rejected by the partner"), "aws_sync_error": ""}
            )
        elif status == "EXPIRED" and props.get("dealstage") != cfg.closed_lost_stage:
            # Expired, or withdrawn by AWS (Partner Central shows both as EXPIRED).
            out["closed"][inv_id] = "expired"
            updates.setdefault(deal_id, {}).update(_closed(cfg.closed_lost_stage, "AWS invitation expired"))
            out["audit"].append(_audit(run, deal_id, inv_id, "INVITATION_EXPIRED"))
        # A deal whose take-in failed gets no status: the next run takes it in again (_to_take_in).
        if props.get(STATUS) != status and inv_id not in incomplete:
            updates.setdefault(deal_id, {})[STATUS] = status
        expires = _ts(inv.get("ExpirationDate"))
        if (
            status == "PENDING"
            and expires is not None
            and expires - now <= timedelta(days=cfg.reminder_days)
            and expires > now
        ):
            tasks.append(
                {
                    "marker": f"invitation {inv_id} expires",
                    "deal_id": deal_id,
                    "owner_id": props.get("hubspot_owner_id") or cfg.default_owner_id,
                    "subject": "AWS referral expires soon: accept or reject it",
                    "body": f"The AWS invitation expires at {utc_iso(expires)}. Set AWS Invitation Action.",
                }
            )
            out["reminded"].append(inv_id)
    if updates:
        result = gw.batch_update(DEAL.plural, updates)
        for err in result.errors:
            log.error("Updating referral deals: %s", err.get("message"))
    if tasks:
        writer.create_marked_tasks(tasks)
    key = run_key(run["catalog"], run["run_id"], "invitations.json")
    out["api_calls"] = {**dict(calls), **dict(gw.calls)}
    env.snapshots.put_json(out, key)
    _write_audit(env, run, out["audit"])
    if only is None and not out["failed"]:
        # A complete listing with every invitation taken in: the backstop clock starts again. One that
        # failed somewhere leaves it, so the next run lists again instead of waiting for the backstop.
        mark_invitations_listed(env, run)
    counts = {
        "invitations": len(invitations),
        "deals_created": len(out["created"]),
        "leads": len(out["leads"]),
        "accepting": len(out["accepting"]),
        "rejected": len(out["rejected"]),
        "closed": len(out["closed"]),
        "failed": len(out["failed"]),
    }
    log.info("AWS invitations: %s", counts)
    return {
        "key": key,
        "tasks": [t["task_id"] for t in out["accepting"].values()],
        "counts": counts,
        "api_calls": out["api_calls"],
    }


def _closed(stage: str, reason: str) -> dict[str, str]:
    return {"dealstage": stage, "closed_lost_reason": reason}


def _status_now(env: SyncEnv, inv_id: str, calls: Counter[str]) -> str | None:
    """The invitation's status read back after an unclear answer; None when it cannot be read either."""
    try:
        calls["GetEngagementInvitation"] += 1
        return str(env.partner_central.call("get_engagement_invitation", Identifier=inv_id).get("Status"))
    except SyncError:
        return None


def _to_take_in(inv: dict[str, Any], deals: dict[str, dict[str, Any]]) -> bool:
    """A PENDING invitation without a deal, or whose deal's take-in did not finish (no status yet).

    A take-in interrupted after the deal upsert (a 5xx after HubSpot applied it, a killed worker) leaves
    a deal without ``aws_invitation_status``; taking it in again upserts the same deal, company and
    contacts and finds the owner's task instead of making a second one.
    """
    if inv.get("Status") != "PENDING":
        return False
    deal = deals.get(inv["Id"])
    return deal is None or not (deal.get("properties") or {}).get(STATUS)


def _take_in(
    env: SyncEnv,
    gw: Any,
    summary: dict[str, Any],
    out: dict[str, Any],
    run: dict[str, Any],
    calls: Counter[str],
) -> None:
    """A new PENDING invitation: a deal (opportunity referral), a contact (lead), else audited only."""
    inv_id = summary["Id"]
    payload_type = summary.get("PayloadType")
    if payload_type not in ("OpportunityInvitation", "LeadInvitation"):
        log.warning("Invitation %s has payload type %s: recorded, not synced.", inv_id, payload_type)
        out["ignored"].append(inv_id)
        out["audit"].append(
            _audit(run, None, inv_id, "INVITATION_IGNORED", metadata={"payloadType": payload_type})
        )
        return
    calls["GetEngagementInvitation"] += 1
    full = env.partner_central.call("get_engagement_invitation", Identifier=inv_id)
    payload = (full.get("Payload") or {}).get(payload_type) or {}
    if payload_type == "LeadInvitation":
        _lead_to_contact(gw, inv_id, payload, out, run)
        return
    cfg = env.config
    icfg = cfg.invitations
    customer = payload.get("Customer") or {}
    project = payload.get("Project") or {}
    spend = (project.get("ExpectedCustomerSpend") or [{}])[0]
    props = {
        "dealname": str(project.get("Title") or summary.get("EngagementTitle") or "AWS referral")[:255],
        "pipeline": icfg.pipeline or cfg.pipeline,
        "dealstage": icfg.stage or cfg.stages[0].hubspot_stage,
        "description": str(project.get("BusinessProblem") or ""),
        INVITATION_ID: inv_id,
        SENDER: str(full.get("SenderCompanyName") or summary.get("SenderCompanyName") or ""),
    }
    if spend.get("Amount"):
        props["amount"] = str(spend["Amount"])
    if project.get("TargetCompletionDate"):
        props["closedate"] = str(project["TargetCompletionDate"])
    expires = _ts(full.get("ExpirationDate") or summary.get("ExpirationDate"))
    if expires is not None:
        props[EXPIRES] = utc_iso(expires)
    if icfg.default_owner_id:
        props["hubspot_owner_id"] = icfg.default_owner_id
    result = gw.batch_upsert(DEAL.plural, INVITATION_ID, {inv_id: props})
    if result.errors or not result.results:
        raise SyncError(
            f"invitation {inv_id}: the deal was not created ({(result.errors or [{}])[0].get('message')})",
            service="hubspot",
            record_id=inv_id,
        )
    deal_id = str(result.results[0]["id"])
    _relate(gw, deal_id, inv_id, customer, payload.get("SenderContacts") or [])
    from cosell_sync.writers.hubspot import HubSpotWriter

    marker = f"invitation {inv_id} received"
    made = HubSpotWriter(cfg, gw).create_marked_tasks(
        [
            {
                "marker": marker,
                "deal_id": deal_id,
                "owner_id": icfg.default_owner_id,
                "subject": "New AWS referral: accept or reject it",
                "body": (
                    "AWS sent this opportunity through Partner Central. Set AWS Invitation Action to Accept "
                    f"or Reject (with AWS Rejection Reason) before {props.get(EXPIRES, 'it expires')}."
                ),
            }
        ]
    )
    if marker not in made:
        # A create refused without a clear answer, and not found on reading back: the next run makes it.
        raise SyncError(
            f"invitation {inv_id}: the owner's task was not created", service="hubspot", record_id=inv_id
        )
    out["created"][inv_id] = deal_id
    out["audit"].append(
        _audit(
            run,
            deal_id,
            inv_id,
            "CREATE_DEAL",
            metadata={"from": "AWS referral", "payloadType": payload_type},
        )
    )


def _customer_company(gw: Any, key: str, customer: dict[str, Any]) -> str | None:
    """The HubSpot company of an invitation's customer: the one HubSpot has for its domain, else a new one.

    Matched on the website's domain first, as the sync's own new companies are
    (:func:`cosell_sync.writers.hubspot.companies_by_domain`): a customer the portal already has gets no
    second company. Otherwise upserted on ``aws_created_for`` = ``key`` (a retry finds the one it made),
    with the domain set so the next opportunity of this customer finds it. None without a company name.
    """
    from cosell_sync.common import COMPANY
    from cosell_sync.domains import normalize_domain
    from cosell_sync.writers.hubspot import DOMAIN_PROPERTY, companies_by_domain

    if not customer.get("CompanyName"):
        return None
    domain = normalize_domain(customer.get("WebsiteUrl"))
    if domain:
        existing, _ = companies_by_domain(gw, [domain])
        if domain in existing:
            return existing[domain]
    company = {"name": str(customer["CompanyName"]), "aws_created_for": key}
    if customer.get("WebsiteUrl"):
        company["website"] = str(customer["WebsiteUrl"])
    if domain:
        company[DOMAIN_PROPERTY] = domain
    if customer.get("CountryCode"):
        company["country"] = str(customer["CountryCode"])
    res = gw.batch_upsert(COMPANY.plural, "aws_created_for", {key: company})
    return str(res.results[0]["id"]) if res.results else None


def _relate(
    gw: Any, deal_id: str, inv_id: str, customer: dict[str, Any], contacts: list[dict[str, Any]]
) -> None:
    """The referral's customer company and AWS sender contacts, upserted and associated with the deal."""
    from cosell_sync.common import COMPANY, CONTACT

    company_id = _customer_company(gw, f"invitation:{inv_id}", customer)
    if company_id:
        gw.associate_default(DEAL.plural, COMPANY.plural, [(deal_id, company_id)])
    rows = {
        str(c["Email"]).lower(): {
            "email": str(c["Email"]).lower(),
            "firstname": str(c.get("FirstName") or ""),
            "lastname": str(c.get("LastName") or ""),
            "jobtitle": str(c.get("BusinessTitle") or ""),
        }
        for c in contacts
        if c.get("Email")
    }
    if rows:
        res = gw.batch_upsert(CONTACT.plural, "email", rows)
        pairs = [(deal_id, str(r["id"])) for r in res.results]
        if pairs:
            gw.associate_default(DEAL.plural, CONTACT.plural, pairs)


def _lead_to_contact(
    gw: Any, inv_id: str, payload: dict[str, Any], out: dict[str, Any], run: dict[str, Any]
) -> None:
    """A lead invitation: a contact and its company, upserted on the invitation (once); no deal.

    The invitation names the customer and the contact's business title, not the person (AWS shares the
    contact in the engagement's Lead context once the invitation is accepted).
    """
    from cosell_sync.common import COMPANY, CONTACT

    customer = payload.get("Customer") or {}
    interaction = payload.get("Interaction") or {}
    key = f"lead:{inv_id}"
    company_id = _customer_company(gw, key, customer)
    contact = {
        "aws_created_for": key,
        "lastname": f"AWS lead ({customer.get('CompanyName') or inv_id})"[:100],
        "jobtitle": str(interaction.get("ContactBusinessTitle") or ""),
        "company": str(customer.get("CompanyName") or ""),
    }
    res = gw.batch_upsert(CONTACT.plural, "aws_created_for", {key: contact})
    if res.errors or not res.results:
        why = (res.errors or [{}])[0].get("message")
        raise SyncError(
            f"lead invitation {inv_id}: the contact was not created ({why})",
            service="hubspot",
            record_id=inv_id,
        )
    if company_id and res.results:
        gw.associate_default(CONTACT.plural, COMPANY.plural, [(str(res.results[0]["id"]), company_id)])
    out["leads"].append(inv_id)
    out["audit"].append(
        _audit(
            run,
            None,
            inv_id,
            "CREATE_CONTACT",
            metadata={"from": "AWS lead invitation", "useCase": interaction.get("Usecase")},
        )
    )


def _accept(
    env: SyncEnv,
    inv: dict[str, Any],
    deal_id: str,
    run: dict[str, Any],
    calls: Counter[str],
    out: dict[str, Any],
) -> dict[str, Any]:
    """The accept task of an invitation: started once (ClientToken), or found when already accepted."""
    from cosell_sync.mapping import client_token

    inv_id = inv["Id"]
    if inv.get("Status") == "ACCEPTED":
        task = _accept_task(env, inv_id, calls)
        if task:
            log.info(
                "Invitation %s was accepted by an earlier run: linking its task %s.", inv_id, task["TaskId"]
            )
            return {"task_id": task["TaskId"], "deal_id": deal_id, "resumed": True}
    calls["StartEngagementByAcceptingInvitationTask"] += 1
    try:
        task = env.partner_central.call(
            "start_engagement_by_accepting_invitation_task",
            Identifier=inv_id,
            ClientToken=client_token(env.catalog, f"accept-{inv_id}"),
        )
    except SyncError as err:
        # A 5xx or a timeout does not say whether AWS started the task: read back before failing. A task
        # this run does not wait for and link would let the extract below make a second deal for its
        # opportunity. (Unreadable too: the error stands, and the decision stays on the deal.)
        try:
            task = _accept_task(env, inv_id, calls, running_or_done=True)
        except SyncError:
            task = None
        if not task:
            raise err from None
        log.warning(
            "Accepting invitation %s answered %s, but its task %s runs.", inv_id, err.code, task["TaskId"]
        )
    out["audit"].append(
        _audit(run, deal_id, inv_id, "ACCEPT_INVITATION", metadata={"taskId": task.get("TaskId")})
    )
    return {"task_id": task["TaskId"], "deal_id": deal_id}


def _accept_task(
    env: SyncEnv, inv_id: str, calls: Counter[str], running_or_done: bool = False
) -> dict[str, Any] | None:
    """The invitation's latest accept task (``running_or_done``: not FAILED), or None."""
    calls["ListEngagementByAcceptingInvitationTasks"] += 1
    page = env.partner_central.call(
        "list_engagement_by_accepting_invitation_tasks", EngagementInvitationIdentifier=[inv_id]
    )
    summaries = sorted(page.get("TaskSummaries") or [], key=lambda t: str(t.get("StartTime")))
    if running_or_done:
        summaries = [t for t in summaries if t.get("TaskStatus") != "FAILED"]
    return summaries[-1] if summaries else None


def finish_invitations(env: SyncEnv, run: dict[str, Any], started: dict[str, Any]) -> dict[str, Any]:
    """Link accepted invitations' opportunities to their deals; show failed accepts on the deal.

    Args:
        env: clients and stores.
        run: the run description.
        started: :func:`sync_invitations`' result.

    Returns:
        ``linked``, ``failed`` counts.
    """
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.writers.hubspot import HubSpotWriter

    if not started.get("key"):
        return {"linked": 0, "failed": 0}
    out = env.snapshots.get_json(started["key"])
    gw = HubSpotGateway(env.hubspot)
    calls: Counter[str] = Counter()
    updates: dict[str, dict[str, str]] = {}
    tasks: list[dict[str, Any]] = []
    linked = failed = 0
    audit: list[dict[str, Any]] = []
    for inv_id, accept in (out.get("accepting") or {}).items():
        calls["ListEngagementByAcceptingInvitationTasks"] += 1
        page = env.partner_central.call(
            "list_engagement_by_accepting_invitation_tasks", TaskIdentifier=[accept["task_id"]]
        )
        task = next((t for t in page.get("TaskSummaries") or [] if t.get("TaskId") == accept["task_id"]), {})
        status = task.get("TaskStatus")
        deal_id = accept["deal_id"]
        if status == "COMPLETE" and task.get("OpportunityId"):
            updates[deal_id] = {
                "aws_opportunity_id": str(task["OpportunityId"]),
                env.config.cosell_property: "true",
                STATUS: "ACCEPTED",
                "aws_sync_error": "",
            }
            linked += 1
            audit.append(
                _audit(
                    run,
                    deal_id,
                    inv_id,
                    "LINK_ACCEPTED_INVITATION",
                    opportunity_id=str(task["OpportunityId"]),
                    metadata={"taskId": accept["task_id"]},
                )
            )
        elif status == "FAILED":
            reason = f"{task.get('ReasonCode') or 'unknown'}: {task.get('Message') or ''}".strip()
            updates[deal_id] = {"aws_sync_error": f"Accepting the AWS invitation failed ({reason})"}
            tasks.append(
                {
                    "marker": f"invitation {inv_id} accept failed {accept['task_id']}",
                    "deal_id": deal_id,
                    "owner_id": env.config.invitations.default_owner_id,
                    "subject": "Accepting the AWS referral failed",
                    "body": f"Partner Central could not accept the invitation: {reason}.",
                }
            )
            failed += 1
            audit.append(
                _audit(
                    run,
                    deal_id,
                    inv_id,
                    "ACCEPT_INVITATION",
                    success=False,
                    error={"code": task.get("ReasonCode"), "message": task.get("Message")},
                    metadata={"taskId": accept["task_id"]},
                )
            )
        else:
            log.warning(
                "Accept task %s of invitation %s is still %s: the next run links it.",
                accept["task_id"],
                inv_id,
                status,
            )
    if updates:
        result = gw.batch_update(DEAL.plural, updates)
        for err in result.errors:
            log.error("Linking accepted invitations: %s", err.get("message"))
    if tasks:
        HubSpotWriter(env.config, gw).create_marked_tasks(tasks)
    _write_audit(env, run, audit)
    log.info("Accepted invitations: %d linked, %d failed.", linked, failed)
    return {"linked": linked, "failed": failed, "api_calls": {**dict(calls), **dict(gw.calls)}}


def _write_audit(env: SyncEnv, run: dict[str, Any], audit: list[dict[str, Any]]) -> None:
    """Write the step's audit entries (deterministic keys: a retried step rewrites the same entries)."""
    from cosell_sync.audit import AuditEntry
    from cosell_sync.common import Direction

    started_at = parse_ts(run["started_at"])
    entries = [
        AuditEntry(
            opportunity_id=a.get("opportunity_id"),
            deal_id=a["deal_id"],
            run_id=run["run_id"].replace("#", "_"),
            run_timestamp=started_at,
            direction=Direction.TO_HUBSPOT.value,
            action=a["action"],
            source="PARTNER_CENTRAL",
            user=f"airflow:{run.get('dag_id', 'cosell_reconcile')}",
            success=a.get("success", True),
            error=a.get("error"),
            metadata=a.get("metadata") or {},
        )
        for a in audit
    ]
    if entries:
        env.audit.write(entries)
