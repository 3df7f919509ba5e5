"""The commit step: record what a run did, then move its state forward, in an order that survives a crash.

Pure functions build the three things a run leaves behind from the plan and the apply results:

- :func:`audit_entries`: one entry per record, direction and action (deterministic keys);
- :func:`next_baseline`: the rows of the fields both systems now agree on;
- :func:`retry_set`: what to read again next run, and what left the queue.

:func:`write_commit` writes them in order: audit entries, then the baseline, the retry queue and, last,
the watermark. A failure anywhere before leaves the watermark where it was, and the run is redone.

A field's baseline advances only where both systems now hold the same value: it was already equal, or
our write of the winning value succeeded. Deferred, blocked, gated, superseded, failed and
manual-conflict fields keep their old baseline, so the next run sees the difference again; failed,
deferred and unread records go to the retry queue so they are read again even if nothing else changes.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cosell_sync.common import CONTACT, HUBSPOT_OBJECTS, AuditAction, Direction, Side, clean, parse_ts, ts_key
from cosell_sync.conflicts import conflict_id
from cosell_sync.deal_contacts import AGREED_COLUMN, member_of_field
from cosell_sync.journal import APPLIED, BULK_CREATE_JOB, BULK_UPDATE_JOB, FAILED, HUBSPOT_WRITES, INTENT
from cosell_sync.polling import advance_related

if TYPE_CHECKING:
    from cosell_sync.audit import AuditEntry
    from cosell_sync.config import SyncConfig
    from cosell_sync.env import SyncEnv
    from cosell_sync.plan import Plan

log = logging.getLogger(__name__)

#: Audit ``source`` values: where a change came from.
FROM_HUBSPOT = "HUBSPOT"
FROM_PARTNER_CENTRAL = "PARTNER_CENTRAL"


@dataclass
class CommitInputs:
    """Everything commit needs, as plain per-record dicts (one conversion, no pandas lookups per field).

    Attributes:
        cfg: the sync configuration.
        run: the run description.
        plan: the run's plan.
        pc: this run's Partner Central records (opportunity id -> column -> value).
        hs: this run's HubSpot records.
        base: the baseline rows of the records the run touched.
        pc_res: the ``apply_partner_central`` results (empty in a dry run).
        hs_res: the ``apply_hubspot`` results.
    """

    cfg: SyncConfig
    run: dict[str, Any]
    plan: Plan
    pc: dict[str, dict[str, Any]]
    hs: dict[str, dict[str, Any]]
    base: dict[str, dict[str, Any]]
    pc_res: dict[str, Any] = field(default_factory=dict)
    hs_res: dict[str, Any] = field(default_factory=dict)

    def base_value(self, oid: str, name: str) -> str | None:
        """The record's baseline value of a column."""
        return clean(self.base.get(oid, {}).get(name))

    def deal_of(self, oid: str) -> str | None:
        """The record's HubSpot deal id (this run's read, else the baseline)."""
        found = clean(self.hs.get(oid, {}).get("_deal_id")) or clean(self.base.get(oid, {}).get("deal_id"))
        return str(found) if found else None

    @property
    def pc_ok(self) -> set[str]:
        """Records whose Partner Central update was written or already held."""
        return (
            set(self.pc_res.get("updated") or {})
            | set(self.pc_res.get("skipped") or [])
            | set(self.pc_res.get("unchanged") or [])
        )

    def written_pc(self, oid: str) -> dict[str, Any]:
        """Field -> value this run wrote (or found already written) to the opportunity."""
        return ((self.pc_res.get("updated") or {}).get(oid) or {}).get("written") or {}


class RetryKey:
    """The identity of a retry-queue item (opportunity or deal)."""

    @staticmethod
    def of(item: dict[str, Any]) -> str:
        """``OPP#id`` or ``DEAL#id``."""
        return f"OPP#{item['opportunity_id']}" if item.get("opportunity_id") else f"DEAL#{item['deal_id']}"


def load_inputs(
    env: SyncEnv, run: dict[str, Any], plan: Plan, pc_applied: dict[str, Any], hs_applied: dict[str, Any]
) -> CommitInputs:
    """Read the snapshots and apply results a commit works from (by the keys the steps returned)."""
    pc = env.snapshots.get_frame(plan.sources["partner_central"])
    hs = env.snapshots.get_frame(plan.sources["hubspot"])
    pc_rec: dict[str, dict[str, Any]] = pc.to_dict("index")
    hs_rec: dict[str, dict[str, Any]] = hs.to_dict("index")
    referenced = set(pc_rec) | set(hs_rec) | set(plan.hubspot_updates) | set(plan.partner_central_updates)
    referenced |= {i["opportunity_id"] for i in (*plan.deferred, *plan.blocked, *plan.conflicts)}
    base = env.baseline.load()
    base_rec: dict[str, dict[str, Any]] = base.loc[base.index.intersection(list(referenced))].to_dict("index")
    return CommitInputs(
        cfg=env.config,
        run=run,
        plan=plan,
        pc=pc_rec,
        hs=hs_rec,
        base=base_rec,
        pc_res=env.snapshots.get_json(pc_applied["key"]) if pc_applied.get("key") else {},
        hs_res=env.snapshots.get_json(hs_applied["key"]) if hs_applied.get("key") else {},
    )


def _contacts_read(ci: CommitInputs, oid: str) -> dict[str, Any]:
    """The baseline's ``contact_count`` and ``other_contact_ids`` of a linked record.

    This run's read (``cosell_sync.deal_contacts``) when the writer settled the deal's other contacts
    (sent, already held, or refused for good by a ``Rejected`` review); else the baseline's (the write
    failed, waits for the review, or went in a bulk job, which does not carry them), so the count still
    differs when the deal is read again and the contacts are read and sent then.
    """
    from cosell_sync.deal_contacts import (
        CONTACT_COUNT_COLUMN,
        OTHER_CONTACT_IDS_COLUMN,
        agreed_of,
        emails_of,
    )

    kept = {
        "contact_count": ci.base_value(oid, "contact_count"),
        "other_contact_ids": ci.base_value(oid, "other_contact_ids"),
        "other_contact_emails": ci.base_value(oid, "other_contact_emails"),
        AGREED_COLUMN: ci.base_value(oid, AGREED_COLUMN),
    }
    if oid in (ci.pc_res.get("other_contacts_done") or []):
        row = ci.hs.get(oid) or {}
        kept = {
            # A deal read only through a changed contact has no count this run: the baseline's stands.
            "contact_count": clean(row.get(CONTACT_COUNT_COLUMN)) or kept["contact_count"],
            "other_contact_ids": clean(row.get(OTHER_CONTACT_IDS_COLUMN)),
            # What the sync now stands behind: a later removal on the deal removes exactly these.
            "other_contact_emails": ";".join(emails_of(ci.plan.other_contacts[oid])) or None,
            # What both sides now hold (the plan set Partner Central's winning edits in them).
            AGREED_COLUMN: agreed_of(ci.plan.other_contacts[oid]),
        }
    written = _contacts_written_back(ci, oid)
    if written:
        agreed = json.loads(kept[AGREED_COLUMN] or "{}")
        for email, members in written.items():
            if email in agreed:
                agreed[email] = {
                    **{m: v for m, v in agreed[email].items() if m not in members},
                    **{m: v for m, v in members.items() if v is not None},
                }
        kept[AGREED_COLUMN] = json.dumps(agreed, sort_keys=True) if agreed else None
    return kept


def _contacts_written_back(ci: CommitInputs, oid: str) -> dict[str, dict[str, str | None]]:
    """Other contacts' members apply_hubspot wrote from Partner Central: e-mail -> member -> value as read."""
    from cosell_sync.deal_contacts import PC_OTHER_CONTACTS_COLUMN

    emails = (ci.hs_res.get("other_contacts_written") or {}).get(oid)
    if not emails or oid in (ci.hs_res.get("failed") or {}):
        return {}
    member_of = member_of_field(ci.cfg)
    read = json.loads(clean((ci.pc.get(oid) or {}).get(PC_OTHER_CONTACTS_COLUMN)) or "[]")
    by_email = {str(c.get("Email") or "").casefold(): c for c in read}
    planned = ci.plan.contacts_to_hubspot.get(oid) or {}
    return {
        e: {member_of[name]: by_email.get(e, {}).get(member_of[name]) for name in planned.get(e, {})}
        for e in emails
    }


# ---------------------------------------------------------------------------------------------------
def audit_entries(ci: CommitInputs) -> list[AuditEntry]:
    """One audit entry per record, direction and action, with the values before and after.

    Args:
        ci: the commit inputs.

    Returns:
        The entries (their keys derive from the run, so a retried commit overwrites them).
    """
    from cosell_sync.audit import AuditEntry

    run, plan = ci.run, ci.plan
    run_ts = parse_ts(run["started_at"])
    user = f"airflow:{run['dag_id']}"
    meta = {"runId": run["run_id"], "dagId": run["dag_id"], "runType": run["run_type"]}
    entries: list[AuditEntry] = []
    pc_failed = ci.pc_res.get("failed") or {}
    hs_failed = ci.hs_res.get("failed") or {}

    def entry(
        oid: str | None,
        deal: str | None,
        direction: str,
        action: AuditAction,
        source: str,
        changes: dict[str, tuple[Any, Any]],
        success: bool = True,
        error: dict[str, Any] | None = None,
        calls: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        entries.append(
            AuditEntry(
                opportunity_id=oid,
                deal_id=deal,
                run_id=run["run_id"].replace("#", "_"),
                run_timestamp=run_ts,
                direction=direction,
                action=action,
                source=source,
                user=user,
                changes={k: {"old": v[0], "new": v[1]} for k, v in changes.items()},
                success=success,
                error=error,
                api_calls=calls or [],
                metadata={**meta, **({"dealId": deal} if deal else {}), **(extra or {})},
            )
        )

    superseded = ci.pc_res.get("superseded") or {}
    gated = ci.pc_res.get("gated") or {}
    # Fields the writer held back (review moved, or Partner Central changed after the plan) are deferred.
    held: list[dict[str, Any]] = []
    for oid, changes in plan.partner_central_records().items():
        written = ci.written_pc(oid)
        failed = pc_failed.get(oid)
        # Other contacts set by the write (cosell_sync.deal_contacts): how many, in the entry's metadata.
        others = ((ci.pc_res.get("updated") or {}).get(oid) or {}).get("other_contacts")
        # Old values are what Partner Central held when the change was planned (the writer checked
        # them again after any ConflictException).
        before = plan.expected.get(oid) or {}
        if written or failed or others is not None:
            entry(
                oid,
                ci.deal_of(oid),
                Direction.TO_PARTNER_CENTRAL,
                AuditAction.UPDATE_OPPORTUNITY,
                FROM_HUBSPOT,
                {f: (before.get(f, ci.base_value(oid, f)), v) for f, v in (written or changes).items()},
                not failed,
                failed,
                [] if oid in plan.invalid else ["GetOpportunity", "UpdateOpportunity"],
                extra={**plan.value_notes(oid), **({"otherContacts": others} if others is not None else {})},
            )
        for name, reason in ((gated.get(oid) or {}).get("fields") or {}).items():
            held.append({"opportunity_id": oid, "field": name, "reason": reason, "value": changes.get(name)})
        for name, fresh in (superseded.get(oid) or {}).items():
            held.append(
                {
                    "opportunity_id": oid,
                    "field": name,
                    "reason": "CHANGED_IN_PARTNER_CENTRAL",
                    "value": changes.get(name),
                    "old": fresh,
                }
            )
    reverted = ci.hs_res.get("auto_reverted") or {}
    for oid, item in reverted.items():
        # rollback.auto_revert_hubspot: Partner Central rejected the record, so its HubSpot writes were
        # held back; old = the value HubSpot keeps, new = the value held back (cosell_sync.auto_revert).
        entry(
            oid,
            ci.deal_of(oid),
            Direction.TO_HUBSPOT,
            AuditAction.AUTO_ROLLBACK,
            FROM_PARTNER_CENTRAL,
            {f: (c.get("old"), c.get("new")) for f, c in item["changes"].items()},
            extra={"reason": "PARTNER_CENTRAL_REJECTED", "errorCode": item.get("error")},
        )
    for oid, changes in plan.hubspot_updates.items():
        if oid in reverted:
            continue
        entry(
            oid,
            ci.deal_of(oid),
            Direction.TO_HUBSPOT,
            AuditAction.UPDATE_DEAL,
            FROM_PARTNER_CENTRAL,
            {f: (ci.base_value(oid, f), v) for f, v in changes.items()},
            oid not in hs_failed,
            hs_failed.get(oid),
            ["crm.objects.batch.update"],
        )
    member_of = member_of_field(ci.cfg)
    for oid, emails in (ci.hs_res.get("other_contacts_written") or {}).items():
        # Other contacts edited in Partner Central, written to their HubSpot contacts: keys name the
        # contact's position and the field (old = the value both sides had agreed on).
        positions = plan.contact_positions.get(oid) or {}
        agreed = json.loads(ci.base_value(oid, AGREED_COLUMN) or "{}")
        entry(
            oid,
            ci.deal_of(oid),
            Direction.TO_HUBSPOT,
            AuditAction.UPDATE_CONTACT,
            FROM_PARTNER_CENTRAL,
            {
                f"{name} (contact {positions.get(e)})": ((agreed.get(e) or {}).get(member_of[name]), v)
                for e in emails
                for name, v in (plan.contacts_to_hubspot.get(oid) or {}).get(e, {}).items()
            },
            oid not in hs_failed,
            hs_failed.get(oid),
            ["crm.objects.batch.read", "crm.objects.batch.update"],
            extra={"contactIds": (ci.hs_res.get("other_contact_ids") or {}).get(oid) or {}},
        )
    for item in plan.create_opportunities:
        deal_id = item["deal_id"]
        created = (ci.pc_res.get("created") or {}).get(deal_id)
        entry(
            created["opportunity_id"] if created else None,
            deal_id,
            Direction.TO_PARTNER_CENTRAL,
            AuditAction.CREATE_OPPORTUNITY,
            FROM_HUBSPOT,
            {f: (None, v) for f, v in item["values"].items() if v},
            created is not None,
            pc_failed.get(f"deal:{deal_id}"),
            [] if f"deal:{deal_id}" in plan.invalid else ["CreateOpportunity"],
            extra=plan.value_notes(f"deal:{deal_id}"),
        )
    names = ci.cfg.field_names()
    for oid in plan.create_deals:
        deal_id = (ci.hs_res.get("created") or {}).get(oid)
        record = ci.pc.get(oid, {})
        entry(
            oid,
            deal_id,
            Direction.TO_HUBSPOT,
            AuditAction.CREATE_DEAL,
            FROM_PARTNER_CENTRAL,
            {f: (None, clean(record.get(f))) for f in names if clean(record.get(f))},
            deal_id is not None,
            hs_failed.get(oid),
            ["crm.deals.batch.upsert"],
        )
    for item in ci.pc_res.get("submitted") or []:
        oid = item["opportunity_id"]
        entry(
            oid,
            ci.deal_of(oid),
            Direction.TO_PARTNER_CENTRAL,
            AuditAction.SUBMIT_OPPORTUNITY,
            FROM_HUBSPOT,
            {},
            calls=["StartEngagementFromOpportunityTask"],
            extra={"taskId": item.get("task_id"), "associatedSolutions": item.get("associated") or []},
        )
    for oid in ci.pc_res.get("submit_waiting") or []:
        held.append(
            {"opportunity_id": oid, "field": "submission", "reason": "SOLUTION_REQUIRED", "value": None}
        )
    for reason_items, action in (
        (plan.deferred + held, AuditAction.DEFERRED),
        (plan.blocked, AuditAction.SKIPPED),
    ):
        by_record: dict[str, list[dict[str, Any]]] = {}
        for item in reason_items:
            by_record.setdefault(item["opportunity_id"], []).append(item)
        for oid, items in by_record.items():
            entry(
                oid,
                ci.deal_of(oid),
                Direction.TO_PARTNER_CENTRAL,
                action,
                FROM_HUBSPOT,
                {
                    i["field"]: (i["old"] if "old" in i else ci.base_value(oid, i["field"]), i.get("value"))
                    for i in items
                },
                extra={"reasons": sorted({i["reason"] for i in items})},
            )
    # One CONFLICT_DETECTED entry per record (its audit key is per record, direction and action): the
    # plan's simultaneous updates and the stale data, locked fields and rejected values apply_hubspot met.
    detected: dict[str, list[dict[str, Any]]] = {}
    for item in plan.conflicts:
        detected.setdefault(item["opportunity_id"], []).append(
            {
                "field": item["field"],
                "pc": item.get("pc"),
                "hs": item.get("hs"),
                "conflict_id": item["conflict_id"],
                "conflict_type": item.get("conflict_type") or "SIMULTANEOUS_UPDATE",
            }
        )
    for item in ci.hs_res.get("typed_conflicts") or []:
        detected.setdefault(item["opportunity_id"], []).append(
            {
                "field": item["field"],
                "pc": item.get("partner_central_value"),
                "hs": item.get("hubspot_value"),
                "conflict_id": item["conflict_id"],
                "conflict_type": item["conflict_type"],
            }
        )
    for item in plan.contact_conflicts:
        # An other contact's member changed on both sides (cosell_sync.deal_contacts): decided by the
        # field's strategy, recorded here (no pending conflict: the kept value is already on both sides).
        name = f"{item['field']} (contact {item['position']})"
        detected.setdefault(item["opportunity_id"], []).append(
            {
                "field": name,
                "pc": item.get("pc"),
                "hs": item.get("hs"),
                "conflict_id": conflict_id(item["opportunity_id"], name, item.get("pc"), item.get("hs")),
                "conflict_type": "OTHER_CONTACT_EDITED_ON_BOTH_SIDES",
            }
        )
    for oid, items in detected.items():
        types = sorted({i["conflict_type"] for i in items})
        entry(
            oid,
            ci.deal_of(oid),
            Direction.CONFLICT,
            AuditAction.CONFLICT_DETECTED,
            FROM_HUBSPOT,
            {i["field"]: (i["pc"], i["hs"]) for i in items},
            extra={
                "conflictId": items[0]["conflict_id"],
                "conflictIds": [i["conflict_id"] for i in items],
                "conflictType": types[0] if len(types) == 1 else "MIXED",
                "conflictTypes": {i["field"]: i["conflict_type"] for i in items},
            },
        )
    return entries


# ---------------------------------------------------------------------------------------------------
def retry_set(ci: CommitInputs) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What to read again next run, and what leaves the queue.

    Args:
        ci: the commit inputs.

    Returns:
        ``(retry items, done items)``.
    """
    plan = ci.plan
    pc_failed = ci.pc_res.get("failed") or {}
    hs_failed = ci.hs_res.get("failed") or {}
    pc_ok = ci.pc_ok
    retry: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []

    def item(
        oid: str | None, reason: str, error: Any, direction: str, deal_id: str | None = None
    ) -> dict[str, Any]:
        key = {"opportunity_id": oid} if oid else {"deal_id": deal_id}
        return {**key, "reason": reason, "error": error, "direction": direction}

    for oid in plan.partner_central_records():
        unfinished = (
            (ci.pc_res.get("superseded") or {}).get(oid)
            or (ci.pc_res.get("gated") or {}).get(oid)
            or (ci.pc_res.get("other_contacts_gated") or {}).get(oid)
        )
        if oid in pc_failed:
            retry.append(item(oid, "FAILED", pc_failed[oid], Direction.TO_PARTNER_CENTRAL))
        elif unfinished or oid not in pc_ok:
            # Partner Central changed (or its review moved) between plan and write: read it again.
            retry.append(item(oid, "CHANGED_DURING_WRITE", None, Direction.TO_PARTNER_CENTRAL))
        else:
            done.append({"opportunity_id": oid})
    for oid in plan.hubspot_updates:
        if oid in hs_failed:
            retry.append(item(oid, "FAILED", hs_failed[oid], Direction.TO_HUBSPOT))
        else:
            done.append({"opportunity_id": oid})
    for create in plan.create_opportunities:
        deal_id = create["deal_id"]
        if deal_id not in (ci.pc_res.get("created") or {}):
            err = pc_failed.get(f"deal:{deal_id}")
            retry.append(item(None, "FAILED", err, Direction.TO_PARTNER_CENTRAL, deal_id))
    for oid in plan.create_deals:
        if oid not in (ci.hs_res.get("created") or {}):
            retry.append(item(oid, "FAILED", hs_failed.get(oid), Direction.TO_HUBSPOT))
    for oid in ci.pc_res.get("submit_waiting") or []:
        retry.append(
            item(oid, "SOLUTION_REQUIRED", pc_failed.get(f"submit:{oid}"), Direction.TO_PARTNER_CENTRAL)
        )
    deferred: dict[str, str] = {}
    for d in plan.deferred:
        deferred.setdefault(d["opportunity_id"], d["reason"])
    for oid, reason in deferred.items():
        retry.append(item(oid, reason, None, Direction.TO_PARTNER_CENTRAL))
    for failure in plan.read_failures:
        # A record that could not be read is read again next run: the watermark may move past it.
        retry.append(
            item(failure["opportunity_id"], "READ_FAILED", failure.get("error"), Direction.TO_HUBSPOT)
        )
    for oid in ci.hs_res.get("created") or {}:
        if oid in ci.pc:
            done.append({"opportunity_id": oid})
    linked_ok = set(ci.hs_res.get("linked") or {}) - set(hs_failed)
    for deal_id in ci.pc_res.get("created") or {}:
        if deal_id in linked_ok:
            done.append({"deal_id": str(deal_id)})
        else:
            # Created, but the deal never got its link: read the deal again next run (its journaled
            # create is kept too, so the same opportunity is linked, never a second one made).
            error = hs_failed.get(deal_id) or pc_failed.get(f"deal:{deal_id}")
            retry.append(item(None, "LINK_FAILED", error, Direction.TO_HUBSPOT, str(deal_id)))
    return retry, done


def _keep_journal_entry(entry: dict[str, Any], unlinked: set[str]) -> bool:
    """A create (single or bulk) whose deal did not get its link stays journaled for the next run."""
    if entry.get("kind") == "CREATE_OPPORTUNITY":
        return str(entry.get("deal_id")) in unlinked
    if entry.get("kind") == BULK_CREATE_JOB and entry.get("status") != FAILED:
        return any(str(d) in unlinked for d in entry.get("deal_ids") or [])
    return False


def unlinked_creates(ci: CommitInputs) -> set[str]:
    """Deals whose opportunity this run created but whose link write failed (their journal stays)."""
    hs_failed = ci.hs_res.get("failed") or {}
    linked_ok = set(ci.hs_res.get("linked") or {}) - set(hs_failed)
    return {str(d) for d in (ci.pc_res.get("created") or {}) if d not in linked_ok}


# ---------------------------------------------------------------------------------------------------
def next_baseline(ci: CommitInputs) -> dict[str, dict[str, Any]]:
    """The baseline rows this run moves forward: per record, the values both systems now agree on.

    Args:
        ci: the commit inputs.

    Returns:
        Opportunity id -> column -> value.
    """
    cfg, plan = ci.cfg, ci.plan
    names = cfg.field_names()
    pc_res, hs_res = ci.pc_res, ci.hs_res
    hs_failed = hs_res.get("failed") or {}
    reverted = hs_res.get("auto_reverted") or {}  # held back: HubSpot keeps the old value
    written_hs = {
        oid: ch for oid, ch in plan.hubspot_updates.items() if oid not in hs_failed and oid not in reverted
    }
    stage_field = next((f.name for f in cfg.fields if f.partner_central == "LifeCycle.Stage"), None)
    waiting = set(pc_res.get("submit_waiting") or [])
    rows: dict[str, dict[str, Any]] = {}
    for oid in sorted(set(ci.pc) | set(ci.hs)):
        side_pc = ci.pc.get(oid) or ci.base.get(oid)
        side_hs = ci.hs.get(oid) or ci.base.get(oid)
        if side_pc is None or side_hs is None:
            continue  # not linked yet: the create path below handles it
        written_pc = ci.written_pc(oid)
        row: dict[str, Any] = {}
        for f in names:
            a, b = clean(side_pc.get(f)), clean(side_hs.get(f))
            if f in written_pc:
                row[f] = written_pc[f]
            elif f in written_hs.get(oid, {}):
                row[f] = written_hs[oid][f]
            elif a == b:
                row[f] = a
            else:
                row[f] = ci.base_value(oid, f)
        if oid in waiting and stage_field:
            # The submission waits for a solution: keep the stage's old baseline so the next run sees the
            # deal enter the submit stage again and retries.
            row[stage_field] = ci.base_value(oid, stage_field)
        row["deal_id"] = ci.deal_of(oid)
        row.update(_contacts_read(ci, oid))
        for col in ("company_id", "contact_id"):
            row[col] = (
                clean(ci.hs.get(oid, {}).get(f"_{col}"))
                or clean(((ci.hs_res.get("related") or {}).get(oid) or {}).get(col))
                or ci.base_value(oid, col)
            )
        updated = (pc_res.get("updated") or {}).get(oid)
        row["pc_last_modified"] = (
            updated["last_modified"]
            if updated
            else (
                clean(ci.pc[oid].get("_lm_key")) if oid in ci.pc else ci.base_value(oid, "pc_last_modified")
            )
        )
        stamp = ci.hs.get(oid, {}).get("_last_modified")
        row["hs_last_modified"] = ts_key(stamp) if clean(stamp) else ci.base_value(oid, "hs_last_modified")
        row["review_status"] = (
            clean(ci.pc[oid].get("_review_status")) if oid in ci.pc else ci.base_value(oid, "review_status")
        )
        rows[oid] = row
    for oid, deal_id in (hs_res.get("created") or {}).items():
        if oid in ci.pc:
            record = ci.pc[oid]
            related = (hs_res.get("related") or {}).get(oid) or {}
            rows[oid] = {
                **{f: clean(record.get(f)) for f in names},
                "deal_id": str(deal_id),
                **related,
                # The deal the sync created has the one contact it created with it, or none.
                "contact_count": "1" if clean(related.get("contact_id")) else "0",
                "pc_last_modified": clean(record.get("_lm_key")),
                "review_status": clean(record.get("_review_status")),
            }
    linked_ok = set(hs_res.get("linked") or {}) - set(hs_failed)
    # The new record's company and contact, as the plan read them with the deal: without them in the
    # baseline, the record would be unknown to company/contact changes found through the baseline and to
    # the customer accounts step, until its deal changed.
    from cosell_sync.deal_contacts import agreed_of, emails_of

    planned_related = {
        str(i["deal_id"]): {
            **{
                col: clean(i.get(col))
                for col in ("company_id", "contact_id", "contact_count", "other_contact_ids")
            },
            "other_contact_emails": ";".join(emails_of(i.get("other_contacts") or [])) or None,
            AGREED_COLUMN: agreed_of(i.get("other_contacts") or []),
        }
        for i in plan.create_opportunities
    }
    for deal_id, created in (pc_res.get("created") or {}).items():
        if deal_id not in linked_ok:
            continue  # the deal lacks the link: the next run recreates it idempotently (same ClientToken)
        row = {
            **created.get("values", {}),
            **planned_related.get(str(deal_id), {}),
            "deal_id": str(deal_id),
            "pc_last_modified": created.get("last_modified"),
            "review_status": created.get("review_status"),
        }
        if created["opportunity_id"] in waiting and stage_field:
            row[stage_field] = None
        rows[created["opportunity_id"]] = row
    return rows


def journal_audit_entries(ci: CommitInputs, journal: list[dict[str, Any]]) -> list[AuditEntry]:
    """Audit entries for the journaled writes of runs that died before their commit.

    An entry with an outcome is audited as it happened. An intent without one (the run died during
    the call) is compared with the record as this run read it: where Partner Central holds every
    intended value the write is audited as applied, else as failed with ``OUTCOME_UNKNOWN`` (the
    record is diffed again like any other, so nothing is lost either way).

    Args:
        ci: the commit inputs (this run's Partner Central read and create results).
        journal: the journal entries of other runs.

    Returns:
        One entry per journaled write, keyed by the dead run's id (a retried commit rewrites them).
    """
    from cosell_sync.audit import AuditEntry

    out: list[AuditEntry] = []
    recovered = {deal: c for deal, c in (ci.pc_res.get("created") or {}).items() if c.get("recovered_from")}
    expanded: list[dict[str, Any]] = []
    for item in journal:
        if item.get("kind") == BULK_UPDATE_JOB:
            # A dead run's bulk update job: one intent per record, judged like any unfinished update.
            for oid, update in (item.get("updates") or {}).items():
                old = update.get("old") or {}
                changes = {k: {"old": old.get(k), "new": v} for k, v in (update.get("changes") or {}).items()}
                expanded.append(
                    {
                        **item,
                        "kind": "UPDATE_OPPORTUNITY",
                        "record": oid,
                        "status": INTENT,
                        "changes": changes,
                    }
                )
        else:
            expanded.append(item)
    for item in expanded:
        kind = str(item.get("kind"))
        if kind in (BULK_CREATE_JOB, HUBSPOT_WRITES):
            # A bulk job's records are audited one by one, as creates, by the run that applies its
            # results; a run's HubSpot writes by hubspot_journal_entries.
            continue
        record = str(item.get("record"))
        changes = {k: dict(v) for k, v in (item.get("changes") or {}).items()}
        outcome = item.get("outcome") or {}
        status = item.get("status")
        oid: str | None = None if record.startswith("deal:") else record
        success = status == APPLIED
        error = outcome.get("error")
        if kind == "CREATE_OPPORTUNITY":
            made = recovered.get(str(item.get("deal_id")))
            oid = outcome.get("opportunity_id") or (made or {}).get("opportunity_id")
            success = success or made is not None
        elif status == INTENT:
            now = ci.pc.get(record)
            success = now is not None and all(clean(now.get(f)) == c.get("new") for f, c in changes.items())
        if status == INTENT and not success:
            error = {
                "code": "OUTCOME_UNKNOWN",
                "message": "the run died during the call; the record is compared again by the next run",
            }
        out.append(
            AuditEntry(
                opportunity_id=oid,
                deal_id=item.get("deal_id"),
                run_id=str(item.get("run_id") or ci.run["run_id"]).replace("#", "_"),
                run_timestamp=parse_ts(
                    item.get("run_started_at") or item.get("started_at") or ci.run["started_at"]
                ),
                direction=Direction.TO_PARTNER_CENTRAL,
                action=kind,
                source=FROM_HUBSPOT,
                user=f"airflow:{ci.run['dag_id']}",
                changes=changes,
                success=success,
                error=error,
                api_calls=["CreateOpportunity" if kind == "CREATE_OPPORTUNITY" else "UpdateOpportunity"],
                metadata={
                    "runId": item.get("run_id"),
                    "journalStatus": status,
                    "auditedByRun": ci.run["run_id"],
                },
            )
        )
    return out


def hubspot_journal_entries(
    env: SyncEnv,
    ci: CommitInputs,
    journal: list[dict[str, Any]],
    notes: dict[str, dict[str, str]] | None = None,
) -> list[AuditEntry]:
    """Audit entries for the HubSpot writes of runs that died before their commit.

    The run's ``HUBSPOT_WRITES`` journal entry names its plan and, once ``apply_hubspot`` finished, its
    results: the entries are then exactly those the dead run's commit would have written (same keys, same
    content: a commit that died half-way through its audit adds no copy). An ``apply_hubspot`` that died
    during its writes left no results: each deal update and create of its plan that HubSpot shows, as
    this run read it, is audited as applied (every planned value there); the others were not made as far
    as HubSpot shows, and this run diffs those records again like any other.

    Args:
        env: clients and stores (the dead run's plan, snapshots and results are read from S3).
        ci: this run's commit inputs.
        journal: the journal entries of other runs.
        notes: filled, when given, with the deal notes a dead ``apply_hubspot`` owed for the writes judged
            made here (``dead_run_notes``): dead run id -> deal id -> note body.

    Returns:
        The entries, keyed by the dead runs' ids.
    """
    from cosell_sync.apply import load_plan
    from cosell_sync.errors import NotFoundError

    out: list[AuditEntry] = []
    for item in journal:
        if item.get("kind") != HUBSPOT_WRITES or not item.get("run") or not item.get("planned"):
            continue
        finished = item.get("status") == APPLIED
        results_key = (item.get("outcome") or {}).get("results_key") if finished else None
        # A run description journaled by a task run by hand may lack what only the scheduler sets.
        run = {"dag_id": ci.run["dag_id"], "run_type": "unknown", **item["run"]}
        run["started_at"] = run.get("started_at") or item.get("run_started_at") or item.get("started_at")
        try:
            dead = load_inputs(
                env,
                run,
                load_plan(env, item["planned"], check=False),
                {"key": item.get("pc_results_key")},
                {"key": results_key},
            )
            entries = audit_entries(dead)
        except (NotFoundError, KeyError, TypeError, ValueError) as err:
            # Its plan or snapshots are gone (expired), or the entry is unreadable: nothing left to audit
            # from. Said, not hidden, and not raised: an entry that can never be audited would stop every
            # later commit.
            log.error(
                "HubSpot writes of dead run %s cannot be audited: %s: %s",
                item.get("run_id"),
                type(err).__name__,
                err,
            )
            continue
        first = len(out)
        unshown: list[AuditEntry] = []
        for entry in entries:
            if entry.direction != Direction.TO_HUBSPOT:
                continue  # Partner Central writes have journal entries of their own
            if not finished:
                judged = _judged_by_hubspot(entry, ci, item)
                if judged is None:
                    if entry.action == AuditAction.UPDATE_DEAL:
                        unshown.append(entry)
                    continue
                entry = judged
            out.append(entry)
        if unshown:
            out += _judged_by_history(env, ci, item, unshown)
        if not finished and dead.plan.contacts_to_hubspot:
            out += _other_contacts_judged_by_hubspot(env, dead, ci, item)
        if notes is not None and not finished:
            # A finished apply_hubspot wrote its notes (they come before its results are stored).
            owed = dead_run_notes(ci.cfg, dead.plan, out[first:])
            if owed:
                notes[str(item.get("run_id"))] = owed
    return out


def dead_run_notes(cfg: SyncConfig, plan: Plan, entries: list[AuditEntry]) -> dict[str, str]:
    """The deal notes a dead ``apply_hubspot`` owed for its writes judged made: deal id -> note body.

    The same notes its step 4 writes (``apply.update_note``, ``apply.contacts_note``) for the deal updates
    and other contacts HubSpot shows written; a deal the run created gets no note there, nor here.

    Args:
        cfg: the sync configuration.
        plan: the dead run's plan.
        entries: the dead run's HubSpot writes judged made (``hubspot_journal_entries``).

    Returns:
        Deal id -> HTML body.
    """
    from cosell_sync.apply import contacts_note, locked_fields, update_note

    locked = locked_fields(plan)
    # A field unmapped since the dead run planned it (a config change) is left out of its note: the note
    # names HubSpot properties, and raising here would stop this commit and every later one.
    mapped = set(cfg.field_names())
    notes: dict[str, str] = {}
    for entry in entries:
        oid = entry.opportunity_id or ""
        fields = {f: c for f, c in entry.changes.items() if f in mapped}
        if entry.action == AuditAction.UPDATE_DEAL and entry.deal_id and fields:
            notes[entry.deal_id] = update_note(cfg, fields, locked.get(oid, set()))
    for entry in entries:
        oid = entry.opportunity_id or ""
        if entry.action != AuditAction.UPDATE_CONTACT or not entry.deal_id:
            continue
        positions = {str(p) for p in (entry.metadata.get("contactIds") or {})}
        edited = plan.contacts_to_hubspot.get(oid) or {}
        emails = [
            e
            for e, p in plan.contact_positions.get(oid, {}).items()
            if f"contact {p}" in positions and e in edited
        ]
        if emails:
            notes[entry.deal_id] = notes.get(entry.deal_id, "") + contacts_note(plan, oid, emails)
    return notes


def write_dead_run_notes(env: SyncEnv, owed: dict[str, dict[str, str]]) -> set[str]:
    """Write the notes dead runs owed (``hubspot_journal_entries``), each under its dead run's reference.

    Each run's notes go through the dead ``apply_hubspot``'s own checkpoint and reference: notes it wrote
    before it died are found by their reference and not made again, and a retried commit writes none
    twice (``HubSpotWriter.write_notes``).

    Args:
        env: clients and stores.
        owed: dead run id -> deal id -> note body.

    Returns:
        The dead runs whose notes could not be written (HubSpot refused or did not answer): their journal
        entries are kept, so the next commit tries again.
    """
    from cosell_sync.apply import notes_checkpoints
    from cosell_sync.errors import SyncError
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.writers.hubspot import HubSpotWriter

    failed: set[str] = set()
    gw = HubSpotGateway(env.hubspot)
    for run_id, notes in sorted(owed.items()):
        writer = HubSpotWriter(env.config, gw, notes_checkpoints(env, env.catalog, run_id))
        try:
            count = writer.write_notes(notes, ref=run_id)
        except SyncError as err:
            failed.add(run_id)
            log.error(
                "the %d deal notes dead run %s owed were not written (%s %s); the next run tries again",
                len(notes),
                run_id,
                type(err).__name__,
                err.code or "",
            )
            continue
        log.info("dead run %s: %d deal notes it owed are on their deals", run_id, count)
    return failed


def _judged_by_history(
    env: SyncEnv, ci: CommitInputs, item: dict[str, Any], entries: list[AuditEntry]
) -> list[AuditEntry]:
    """Dead ``apply_hubspot`` updates HubSpot no longer shows, judged by the properties' history.

    A person may have changed a value again between the dead run's write and this run's read: the
    value HubSpot holds is then the person's, and the dead run's write shows only in the property's
    history. An update is audited when every field it planned was set to its planned value after the
    dead ``apply_hubspot`` began (the journal entry's ``started_at``) and before this run started (a
    later setting is this run's own write, or an edit made since); one batch read with
    ``propertiesWithHistory`` per object type and 100 objects, only for such updates.
    """
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.transforms import TransformError, converters_for

    began = parse_ts(item.get("started_at")) if item.get("started_at") else None
    # Up to this run's start: the dead run's writes came before it (it gave the lease up, or the lease
    # expired, before this run took it); later history holds this run's own writes, which are not the
    # dead run's, and edits made since.
    until = parse_ts(ci.run["started_at"])
    if began is None or until is None:
        return []
    convs = converters_for(ci.cfg)
    targets: list[tuple[AuditEntry, list[tuple[str, str, str, str]]]] = []
    props: dict[str, set[str]] = {}  # object type (plural) -> HubSpot properties
    ids: dict[str, set[str]] = {}  # object type (plural) -> object ids
    for entry in entries:
        oid = entry.opportunity_id or ""
        where: list[tuple[str, str, str, str]] = []  # field, object type, object id, property
        for name in entry.changes:
            try:
                mapped = ci.cfg.field(name)
            except KeyError:
                break  # a field no longer mapped: cannot be judged
            obj = HUBSPOT_OBJECTS[mapped.object]
            object_id = clean((ci.hs.get(oid) or {}).get(obj.frame_column)) or ci.base_value(
                oid, obj.baseline_column
            )
            if not object_id:
                break
            where.append((name, obj.plural, str(object_id), mapped.hubspot))
        else:
            targets.append((entry, where))
            for _, plural, object_id, prop in where:
                props.setdefault(plural, set()).add(prop)
                ids.setdefault(plural, set()).add(object_id)
    gw = HubSpotGateway(env.hubspot)
    history: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for plural, object_ids in ids.items():
        names = sorted(props[plural])
        found, _ = gw.batch_read(plural, object_ids, names, history=names)
        for o in found:
            history[(plural, str(o["id"]))] = o.get("propertiesWithHistory") or {}

    def set_since(entry: AuditEntry, name: str, plural: str, object_id: str, prop: str) -> bool:
        for past in history.get((plural, object_id), {}).get(prop) or []:
            try:
                at = parse_ts(past.get("timestamp"))
                value = convs[name].from_hubspot(past.get("value"))
            except (TransformError, TypeError, ValueError):
                continue
            if at is not None and began <= at < until and clean(value) == clean(entry.changes[name].new):
                return True
        return False

    return [
        _audited_as_applied(entry, ci, item, entry.deal_id)
        for entry, where in targets
        if where and all(set_since(entry, *w) for w in where)
    ]


def _audited_as_applied(
    entry: AuditEntry, ci: CommitInputs, item: dict[str, Any], deal_id: str | None
) -> AuditEntry:
    """A dead run's planned write as applied, marked as judged by this run (``journalStatus``)."""
    metadata = {**entry.metadata, "journalStatus": item.get("status"), "auditedByRun": ci.run["run_id"]}
    return entry.model_copy(update={"success": True, "error": None, "deal_id": deal_id, "metadata": metadata})


def _other_contacts_judged_by_hubspot(
    env: SyncEnv, dead: CommitInputs, ci: CommitInputs, item: dict[str, Any]
) -> list[AuditEntry]:
    """``UPDATE_CONTACT`` entries of a dead ``apply_hubspot``: the other contacts HubSpot shows written.

    Which other contacts the dead run wrote is known only from the results it never stored, and this
    run's extract does not read other contacts' values: they are read here (by e-mail, 100 per call, only
    when a dead run had planned such writes). A contact holding every value the dead plan meant for it
    was written; the entries are those the dead commit would have written for these contacts.
    """
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.mapping import changes_to_hubspot

    planned = dead.plan.contacts_to_hubspot
    props: dict[tuple[str, str], dict[str, str]] = {}
    for oid, per_email in planned.items():
        for email, changes in per_email.items():
            try:
                props[(oid, email)] = changes_to_hubspot(changes, ci.cfg).get(CONTACT.name, {})
            except (KeyError, ValueError) as err:  # a field no longer mapped, or no longer a HubSpot one
                # The error's type only: a transform error may quote the value.
                log.warning(
                    "HubSpot writes of dead run %s, opportunity %s: a planned contact write cannot be "
                    "judged (%s); not audited",
                    item.get("run_id"),
                    oid,
                    type(err).__name__,
                )
    names = sorted({p for values in props.values() for p in values})
    current = HubSpotGateway(env.hubspot).contacts_by_email({email for _, email in props}, names)
    written: dict[str, list[str]] = {}
    contact_ids: dict[str, dict[str, str]] = {}
    for (oid, email), values in props.items():
        contact = current.get(email)
        now = (contact or {}).get("properties") or {}
        if contact is None or not values or any(clean(now.get(p)) != clean(v) for p, v in values.items()):
            continue  # not shown: not written as far as anyone can tell; this run diffs it again
        written.setdefault(oid, []).append(email)
        position = str(dead.plan.contact_positions.get(oid, {}).get(email))
        contact_ids.setdefault(oid, {})[f"contact {position}"] = str(contact["id"])
    if not written:
        return []
    shown = replace(dead, hs_res={"other_contacts_written": written, "other_contact_ids": contact_ids})
    return [
        _audited_as_applied(e, ci, item, e.deal_id)
        for e in audit_entries(shown)
        if e.action == AuditAction.UPDATE_CONTACT and e.opportunity_id in written
    ]


def _judged_by_hubspot(entry: AuditEntry, ci: CommitInputs, item: dict[str, Any]) -> AuditEntry | None:
    """A dead ``apply_hubspot``'s planned write, if HubSpot (as this run read it) shows it was made.

    A planned write HubSpot does not show was not made as far as anyone can tell (the run may have died
    before it): no entry, since this run diffs the record again and audits its own write of it.
    """
    oid = entry.opportunity_id
    now = ci.hs.get(oid) if oid else None
    if now is None:
        return None
    if entry.action == AuditAction.CREATE_DEAL:
        deal_id = ci.deal_of(oid) if oid else None  # the deal the upsert made, linked to the opportunity
    elif entry.action == AuditAction.UPDATE_DEAL and all(
        clean(now.get(f)) == c.new for f, c in entry.changes.items()
    ):
        deal_id = entry.deal_id
    else:
        return None  # not shown, or a write only the results the run did not store could tell
    return _audited_as_applied(entry, ci, item, deal_id)


# ---------------------------------------------------------------------------------------------------
def write_commit(env: SyncEnv, ci: CommitInputs) -> dict[str, Any]:
    """Write the audit, then the baseline, the retry queue and, last, the watermark.

    Args:
        env: clients and stores.
        ci: the commit inputs.

    Returns:
        ``audit_entries`` written, ``queued_for_retry``, ``watermark_advanced``, the entries themselves
        (for the change set) and the API calls of the apply steps.
    """
    import pandas as pd

    run = ci.run
    entries = audit_entries(ci)
    journal = env.journal.entries() if env.journal is not None else []
    # Writes of runs that died before their commit: audited now, under their own run id.
    others = [e for e in journal if e.get("run_id") != run["run_id"]]
    entries += journal_audit_entries(ci, others)
    owed: dict[str, dict[str, str]] = {}
    entries += hubspot_journal_entries(env, ci, others, notes=owed)
    rows = next_baseline(ci)
    retry, done = retry_set(ci)
    written = env.audit.write(entries)
    # After the audit: a note says what the audit holds. A run whose notes HubSpot refused keeps its
    # journal entry, so the next commit judges its writes again and writes what is still owed.
    unnoted = write_dead_run_notes(env, owed) if owed else set()
    if env.journal is not None and journal:
        # The audit holds every journaled write now (this run's through its results). A create whose
        # deal did not get its link keeps its entry: the next run resends it and links the same record.
        keep = unlinked_creates(ci)
        env.journal.clear(
            e["SK"]
            for e in journal
            if not _keep_journal_entry(e, keep)
            and not (e.get("kind") == HUBSPOT_WRITES and e.get("run_id") in unnoted)
        )
        for e in journal:
            if e.get("kind") == BULK_CREATE_JOB and _keep_journal_entry(e, keep):
                # Only the deals still without their link are applied again (audited once each).
                env.journal.narrow(e["SK"], [d for d in e.get("deal_ids") or [] if str(d) in keep])
    if rows:
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = "opportunity_id"
        env.baseline.commit(frame, run["run_id"])
    retried_now = {RetryKey.of(i) for i in retry}
    # A queued record this run read on both sides and left with nothing to do (say the user put a failed
    # value back to what Partner Central holds) is settled too: else it is re-read every run for good.
    queued = {i["SK"] for i in env.retry.list()}
    settled = [{"opportunity_id": oid} for oid in ci.pc if oid in ci.hs and f"OPP#{oid}" in queued]
    # Only keys really in the queue are deleted: an initial load marks all 10,000 records done, and
    # deleting absent items is a no-op that still cost 400 BatchWriteItem calls.
    env.retry.remove(
        [i for i in (*done, *settled) if RetryKey.of(i) in queued and RetryKey.of(i) not in retried_now]
    )
    env.retry.add(retry, run_id=run["run_id"])
    moved = False
    if run["advance_watermark"]:
        started = parse_ts(run["started_at"])
        moved = env.watermarks.advance(run["catalog"], Side.PARTNER_CENTRAL, started, run["run_id"])
        env.watermarks.advance(run["catalog"], Side.HUBSPOT, started, run["run_id"])
        # The company/contact search's own mark moves only when this run searched them (polling).
        advance_related(env, run)
    calls: Counter[str] = Counter()
    for res in (ci.pc_res, ci.hs_res):
        calls.update(res.get("api_calls") or {})
    return {
        "entries": entries,
        "audit_entries": written,
        "queued_for_retry": len(retry),
        "watermark_advanced": moved,
        "api_calls": dict(calls),
    }
