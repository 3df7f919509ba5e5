"""The per-run plan: what to write to each system, what waits, and what can never be written.

:func:`build_plan` takes the resolved diff and applies the Partner Central review-state rules
(:mod:`cosell_sync.gating`) to every change bound for PC:

- allowed -> ``partner_central_updates``;
- ``Submitted`` / ``In review`` / not editable in ``Action Required`` -> ``deferred``: the change
  stays pending (the baseline does not advance) and is retried on a later run;
- a field ``LOCKED_AFTER_APPROVAL`` on an ``Approved`` opportunity -> ``blocked`` **and** the PC
  value is pushed back to HubSpot: once AWS has approved, PC is authoritative for those seven
  fields, and leaving the HubSpot edit in place would show a value AWS will never have (and
  re-detect the same change every run);
- ``Rejected`` (read-only) -> ``blocked``; the HubSpot value is left alone, since the
  opportunity is closed on the AWS side and the deal may live on in HubSpot.

The gate uses the best review status known to the run (this run's PC read, else the baseline's
``_review_status``); the PC writer re-gates against the fresh GetOpportunity it merges into.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cosell_sync.conflict_store import SIMULTANEOUS_UPDATE
from cosell_sync.conflicts import HUBSPOT, MANUAL, PARTNER_CENTRAL, conflict_id
from cosell_sync.gating import (
    BLOCKED_REASONS,
    LOCKED,
    UNKNOWN_REVIEW_STATUS,
    UnknownReviewStatusError,
    gate_reason,
)
from cosell_sync.pc_model import strip_indexes

if TYPE_CHECKING:
    from cosell_sync.config import SyncConfig
    from cosell_sync.env import SyncEnv

__all__ = ["Plan", "build_plan", "log_plan", "make_plan", "store_plan"]

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Everything one reconcile run will do, keyed by opportunity id.

    Attributes:
        hubspot_updates: opportunity id -> field -> canonical value to write to HubSpot.
        partner_central_updates: opportunity id -> field -> canonical value to write to PC (gated).
        conflicts: manual conflicts: ``opportunity_id``, ``field``, ``pc``, ``hs``, ``conflict_id``,
            ``conflict_type`` (``SIMULTANEOUS_UPDATE``: the other types are found by the apply steps).
        deferred: ``opportunity_id``, ``field``, ``reason``, ``value``: retried on a later run.
        blocked: ``opportunity_id``, ``field``, ``reason``, ``value``: never sent to PC.
        converged: opportunity ids with fields both sides changed to the same value.
        converged_values: opportunity id -> field -> the agreed value (for the baseline).
        expected: opportunity id -> field -> the Partner Central value each PC update was planned on.
        create_deals: opportunities without a deal: a deal is created for each.
        complete_deals: opportunity id -> deal id, for linked deals never synced before that lack the
            company or contact the sync creates with a deal (a run died between the two creates).
        create_opportunities: co-sell deals without an opportunity: ``deal_id``, ``values``, ``submit``,
            ``team_owner_ids`` (owner first, then collaborators), ``team_title``, ``other_contacts``
            (``Customer.Contacts[1..]``, after the primary: ``cosell_sync.deal_contacts``), and the deal's
            ``company_id`` and ``contact_id`` (the new record's baseline links them).
        submit: opportunities to submit to AWS (their deal entered the submit stage).
        solution_ids: opportunity id (or ``deal:{id}``) -> the partner solutions its deal names.
        diff_rows: rows of the resolved diff (for the log).
        run_id: the run that made the plan.
        sources: the snapshot keys the plan was made from (``partner_central``, ``hubspot``).
        read_failures: opportunities the extract could not read (they go to the retry queue).
        invalid: opportunity id (or ``deal:{id}`` for a create) -> field -> rule: HubSpot values that
            cannot be converted for Partner Central. The record's Partner Central write fails as a whole
            (``aws_sync_error``, a failed audit entry, the retry queue), like a value PC rejects.
        normalised: opportunity id (or ``deal:{id}``) -> field -> rule: HubSpot values written to PC
            in a normalised form (phone completed to E.164, country name to code), for the audit.
        baseline_version: the version (S3 ETag) of the baseline the plan was diffed against; None
            before the first commit. A write step refuses a plan whose baseline is no longer current.
        other_contacts: opportunity id -> the deal's other contacts (``Customer.Contacts[1..]``), for
            linked deals whose contacts were read this run; the writer sends them when they differ from
            Partner Central's (``cosell_sync.deal_contacts``).
        dropped_contacts: opportunity id -> e-mails of other contacts the sync sent before (the
            baseline's ``other_contact_emails``) that the deal no longer has: only these are removed.
        contacts_to_hubspot: opportunity id -> e-mail -> field -> canonical value: other contacts
            (``Customer.Contacts[1..]``) edited in Partner Central, for their HubSpot contacts
            (``cosell_sync.deal_contacts.partner_central_contact_changes``).
        contact_positions: opportunity id -> e-mail -> position in ``Customer.Contacts`` (audit, notes).
        contact_conflicts: other-contact members changed on both sides: ``opportunity_id``, ``email``,
            ``position``, ``field``, ``pc``, ``hs``, ``kept``.
    """

    hubspot_updates: dict[str, dict[str, str | None]] = field(default_factory=dict)
    partner_central_updates: dict[str, dict[str, str | None]] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    deferred: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    converged: list[str] = field(default_factory=list)
    converged_values: dict[str, dict[str, str | None]] = field(default_factory=dict)
    expected: dict[str, dict[str, str | None]] = field(default_factory=dict)
    create_deals: list[str] = field(default_factory=list)
    complete_deals: dict[str, str] = field(default_factory=dict)
    create_opportunities: list[dict[str, Any]] = field(default_factory=list)
    submit: list[str] = field(default_factory=list)
    solution_ids: dict[str, list[str]] = field(default_factory=dict)
    diff_rows: int = 0
    run_id: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    read_failures: list[dict[str, Any]] = field(default_factory=list)
    invalid: dict[str, dict[str, str]] = field(default_factory=dict)
    normalised: dict[str, dict[str, str]] = field(default_factory=dict)
    baseline_version: str | None = None
    other_contacts: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    dropped_contacts: dict[str, list[str]] = field(default_factory=dict)
    contacts_to_hubspot: dict[str, dict[str, dict[str, str | None]]] = field(default_factory=dict)
    contact_positions: dict[str, dict[str, int]] = field(default_factory=dict)
    contact_conflicts: list[dict[str, Any]] = field(default_factory=list)

    #: The members stored in ``plan.json`` (``converged_values`` stays in memory: commit does not need it).
    DOCUMENT_KEYS = (
        "run_id",
        "sources",
        "read_failures",
        "invalid",
        "normalised",
        "baseline_version",
        "hubspot_updates",
        "partner_central_updates",
        "expected",
        "conflicts",
        "deferred",
        "blocked",
        "converged",
        "create_deals",
        "complete_deals",
        "create_opportunities",
        "submit",
        "solution_ids",
        "diff_rows",
        "other_contacts",
        "dropped_contacts",
        "contacts_to_hubspot",
        "contact_positions",
        "contact_conflicts",
    )

    def to_document(self) -> dict[str, Any]:
        """The plan as the JSON document stored in S3 (``plan.json``)."""
        return {k: getattr(self, k) for k in self.DOCUMENT_KEYS}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Plan:
        """Read a stored plan back."""
        return cls(**{k: document[k] for k in cls.DOCUMENT_KEYS if k in document})

    def partner_central_records(self) -> dict[str, dict[str, str | None]]:
        """Every linked record an UpdateOpportunity may write, with its field updates.

        A record whose deal's other contacts alone may have changed (``other_contacts``) has none.
        """
        return {**{oid: {} for oid in self.other_contacts}, **self.partner_central_updates}

    def value_notes(self, key: str) -> dict[str, Any]:
        """Audit metadata for a record's Partner Central write: normalised and unwritable fields.

        Args:
            key: the opportunity id, or ``deal:{id}`` for a create.

        Returns:
            ``{"normalised": {field: rule}, "invalidFields": {field: rule}}``, each only when non-empty
            (rules only: the values are in the entry's ``changes``, under the audit's value policy).
        """
        out: dict[str, Any] = {}
        if self.normalised.get(key):
            out["normalised"] = dict(self.normalised[key])
        if self.invalid.get(key):
            out["invalidFields"] = dict(self.invalid[key])
        return out

    def counts(self) -> dict[str, int]:
        """How many records each kind of action concerns (for XCom and the log)."""
        return {
            name: len(getattr(self, name))
            for name in (
                "hubspot_updates",
                "partner_central_updates",
                "conflicts",
                "deferred",
                "blocked",
                "create_deals",
                "create_opportunities",
                "submit",
            )
        }

    def summary(self) -> dict[str, int]:
        """Counts for the task log and the run summary (no values: they may be PII)."""
        return {
            "hubspot_records": len(self.hubspot_updates),
            "hubspot_fields": sum(len(v) for v in self.hubspot_updates.values()),
            "partner_central_records": len(self.partner_central_updates),
            "partner_central_fields": sum(len(v) for v in self.partner_central_updates.values()),
            "partner_central_other_contacts": len(self.other_contacts),
            "hubspot_other_contacts": sum(len(v) for v in self.contacts_to_hubspot.values()),
            "conflicts": len(self.conflicts),
            "deferred": len(self.deferred),
            "blocked": len(self.blocked),
            "converged": len(self.converged),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per planned action, for S3 and the audit trail.

        Returns:
            Columns ``opportunity_id, action, field, value, reason, conflict_id`` (object dtype).
        """
        rows: list[dict[str, Any]] = []
        for action, updates in (
            ("update_hubspot", self.hubspot_updates),
            ("update_partner_central", self.partner_central_updates),
            ("converged", self.converged_values),
        ):
            for oid, fields in updates.items():
                rows.extend(
                    {"opportunity_id": oid, "action": action, "field": f, "value": v}
                    for f, v in fields.items()
                )
        for action, items in (
            ("conflict", self.conflicts),
            ("deferred", self.deferred),
            ("blocked", self.blocked),
        ):
            for item in items:
                rows.append(
                    {
                        "opportunity_id": item["opportunity_id"],
                        "action": action,
                        "field": item["field"],
                        "value": item.get("value"),
                        "reason": item.get("reason"),
                        "conflict_id": item.get("conflict_id"),
                    }
                )
        columns = ["opportunity_id", "action", "field", "value", "reason", "conflict_id"]
        return pd.DataFrame(rows, columns=columns).astype(object)


def _review_status(oids: pd.Series, pc: pd.DataFrame, base: pd.DataFrame) -> np.ndarray:
    status = pd.Series(None, index=pd.Index(oids.unique(), dtype=object), dtype=object)
    # The baseline may carry the last known status as '_review_status' or as the mapped
    # 'review_status' field (its canonical value is the exact PC enum value).
    for column in ("review_status", "_review_status"):
        if column in base.columns:
            known = base[column].reindex(status.index)
            status = known.where(known.notna(), status)
    if "_review_status" in pc.columns:
        fresh = pc["_review_status"].reindex(status.index)
        status = fresh.where(fresh.notna(), status)
    return status.reindex(oids.to_numpy()).to_numpy(dtype=object)


def _gate_rows(status: np.ndarray, fields: np.ndarray, cfg: SyncConfig) -> np.ndarray:
    """Reason code (or None) per row; each distinct (status, field) is gated once."""
    paths = {f.name: strip_indexes(f.partner_central) for f in cfg.fields}
    keys = pd.MultiIndex.from_arrays([pd.Index(status, dtype=object), pd.Index(fields, dtype=object)])
    uniques = keys.unique()
    reasons: dict[tuple[Any, Any], str | None] = {}
    for review, name in uniques:
        review_value = None if review is None or (isinstance(review, float) and review != review) else review
        try:
            reasons[(review, name)] = gate_reason(review_value, paths[name])
        except UnknownReviewStatusError:
            reasons[(review, name)] = UNKNOWN_REVIEW_STATUS
    codes = uniques.get_indexer(keys)
    table = np.array([reasons[u] for u in uniques], dtype=object)
    return table[codes]


def _nest(oids: np.ndarray, fields: np.ndarray, values: np.ndarray) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for oid, name, value in zip(oids, fields, values, strict=True):
        out.setdefault(oid, {})[name] = value
    return out


def _records(
    oids: np.ndarray, fields: np.ndarray, reasons: np.ndarray, values: np.ndarray
) -> list[dict[str, Any]]:
    return [
        {"opportunity_id": oid, "field": name, "reason": reason, "value": value}
        for oid, name, reason, value in zip(oids, fields, reasons, values, strict=True)
    ]


def build_plan(diff_resolved: pd.DataFrame, pc: pd.DataFrame, base: pd.DataFrame, cfg: SyncConfig) -> Plan:
    """Turn the resolved diff into the run's plan (see the module docstring for the rules).

    Args:
        diff_resolved: the output of :func:`~cosell_sync.conflicts.resolve`.
        pc: this run's opportunities frame (for ``_review_status``).
        base: the baseline frame (its ``_review_status`` is used for opportunities not read this run).
        cfg: the sync configuration.

    Returns:
        The plan.
    """
    plan = Plan()
    if diff_resolved.empty:
        return plan
    oids = diff_resolved["opportunity_id"].to_numpy(dtype=object)
    fields = diff_resolved["field"].to_numpy(dtype=object)
    winner = diff_resolved["winner"].to_numpy(dtype=object)
    value = diff_resolved["value"].to_numpy(dtype=object)
    kind = diff_resolved["kind"].to_numpy(dtype=object)
    pc_values = diff_resolved["pc"].to_numpy(dtype=object)

    to_pc = winner == HUBSPOT
    reason = np.full(len(diff_resolved), None, dtype=object)
    if to_pc.any():
        status = _review_status(diff_resolved.loc[to_pc, "opportunity_id"], pc, base)
        reason[to_pc] = _gate_rows(status, fields[to_pc], cfg)

    allowed = to_pc & pd.isna(reason)
    locked = to_pc & (reason == LOCKED)
    blocked = to_pc & np.isin(reason, list(BLOCKED_REASONS))
    deferred = to_pc & ~allowed & ~blocked

    to_hs = winner == PARTNER_CENTRAL
    push_back = to_hs | locked
    # A locked field pushes the PC value back (PC is authoritative once AWS approved).
    hs_value = np.where(locked, pc_values, value)

    plan.partner_central_updates = _nest(oids[allowed], fields[allowed], value[allowed])
    # What Partner Central held when the change was planned: the writer re-diffs against it after a
    # ConflictException, so a newer console edit is never overwritten by this plan.
    plan.expected = _nest(oids[allowed], fields[allowed], pc_values[allowed])
    plan.hubspot_updates = _nest(oids[push_back], fields[push_back], hs_value[push_back])
    plan.deferred = _records(oids[deferred], fields[deferred], reason[deferred], value[deferred])
    plan.blocked = _records(oids[blocked], fields[blocked], reason[blocked], value[blocked])

    manual = winner == MANUAL
    hs_values = diff_resolved["hs"].to_numpy(dtype=object)
    # conflicts.unify_shared marks a shared company/contact whose opportunities disagree SHARED_RECORD.
    types = (
        diff_resolved["conflict_type"].to_numpy(dtype=object)
        if "conflict_type" in diff_resolved.columns
        else np.full(len(diff_resolved), None, dtype=object)
    )
    plan.conflicts = [
        {
            "opportunity_id": oid,
            "field": name,
            "pc": pcv,
            "hs": hsv,
            "conflict_id": conflict_id(oid, name, pcv, hsv),
            "conflict_type": kind_of if isinstance(kind_of, str) else SIMULTANEOUS_UPDATE,
        }
        for oid, name, pcv, hsv, kind_of in zip(
            oids[manual], fields[manual], pc_values[manual], hs_values[manual], types[manual], strict=True
        )
    ]

    converged = kind == "converged"
    plan.converged_values = _nest(oids[converged], fields[converged], pc_values[converged])
    plan.converged = list(plan.converged_values)
    return plan


# ---------------------------------------------------------------------------------------------------
# the plan step
# ---------------------------------------------------------------------------------------------------
def make_plan(
    env: SyncEnv, run: dict[str, Any], pc_result: dict[str, Any], hs_result: dict[str, Any]
) -> Plan:
    """Diff both sides against the baseline, resolve conflicts, gate by review state: the run's plan.

    The plan is the complete list of intended writes: in a dry run it is the product; otherwise the
    apply steps execute it and ``commit`` records what happened.

    Args:
        env: clients and stores.
        run: the run description from ``prepare``.
        pc_result: the Partner Central extract's result (its snapshot ``key``).
        hs_result: the HubSpot extract's result (``key`` and ``new_key``).

    Returns:
        The complete plan.
    """
    from cosell_sync.common import COMPANY, CONTACT, Direction, clean, ts_key
    from cosell_sync.conflicts import resolve, unify_shared
    from cosell_sync.deal_contacts import (
        CONTACT_COUNT_COLUMN,
        OTHER_CONTACT_IDS_COLUMN,
        OTHER_CONTACTS_COLUMN,
        emails_of,
    )
    from cosell_sync.diff import three_way_diff
    from cosell_sync.mapping import ERROR_COLUMN, SOLUTIONS_COLUMN, TEAM_COLUMN, TEAM_TITLE_COLUMN
    from cosell_sync.writers.partner_central import parse_solution_ids

    cfg = env.config
    base, baseline_version = env.baseline.load_with_version()
    # Without ``_raw`` (each record's whole answer, the frame's widest column): the plan compares fields.
    pc = env.snapshots.get_frame(pc_result["key"], exclude=["_raw"])
    hs = env.snapshots.get_frame(hs_result["key"])
    new_deals = env.snapshots.get_frame(hs_result["new_key"])
    direction = run["direction"]

    # Only linked pairs are diffed: an opportunity without a deal (or a deal without an opportunity)
    # is a create, handled below, not an update of every field.
    linked = set(base.index) | set(hs.index)
    diff = three_way_diff(base, pc[pc.index.isin(list(linked))], hs, cfg)
    # A company or contact shared by several opportunities gets one outcome per field, never a split.
    resolved = unify_shared(resolve(diff, cfg), related_objects(base, hs), cfg)
    frozen = env.conflicts.frozen_fields()
    if frozen and not resolved.empty:
        # A field with a pending manual conflict waits for a person; nothing syncs it meanwhile.
        keys = list(zip(resolved["opportunity_id"], resolved["field"], strict=True))
        resolved = resolved[[k not in frozen for k in keys]]
    plan = build_plan(resolved, pc, base, cfg)
    plan.run_id = run["run_id"]
    plan.baseline_version = baseline_version
    plan.sources = {"partner_central": pc_result["key"], "hubspot": hs_result["key"]}
    plan.diff_rows = len(resolved)
    plan.read_failures = list(pc_result.get("failures") or [])
    for item in plan.conflicts:
        # When each side last changed, for the person resolving it (and the conflict's identity).
        oid = item["opportunity_id"]
        item["partner_central_timestamp"] = clean(pc.at[oid, "_lm_key"]) if oid in pc.index else None
        stamp = hs.at[oid, "_last_modified"] if oid in hs.index else None
        item["hubspot_timestamp"] = ts_key(stamp) if clean(stamp) else None
    if direction == Direction.TO_HUBSPOT:
        plan.partner_central_updates, plan.expected = {}, {}
    elif direction == Direction.TO_PARTNER_CENTRAL:
        plan.hubspot_updates = {}

    # New records: opportunities no deal is linked to, and co-sell deals with no opportunity.
    if direction != Direction.TO_PARTNER_CENTRAL:
        errors = pc[ERROR_COLUMN] if ERROR_COLUMN in pc.columns else None
        # An opportunity a dead run created for a deal is that deal's: apply links it (journal), it
        # must not get a deal of its own.
        recovering = _deals_with_journaled_create(env)
        partner_ids = pc.get("_partner_opportunity_identifier")
        plan.create_deals = [
            oid
            for oid in pc.index
            if oid not in linked
            and not (errors is not None and errors.get(oid))
            and not (partner_ids is not None and str(partner_ids.get(oid)) in recovering)
        ]
        # A deal the sync created whose company or contact create never ran: create them now (by
        # upsert on the opportunity id, so never twice). Only pairs with no baseline: never synced.
        for oid in hs.index.difference(base.index).intersection(pc.index):
            if any(not clean(hs.at[oid, col]) for col in ("_company_id", "_contact_id") if col in hs.columns):
                plan.complete_deals[oid] = str(hs.at[oid, "_deal_id"])
    if direction != Direction.TO_HUBSPOT:
        plan.create_opportunities = [
            {
                "deal_id": str(row["_deal_id"]),
                "values": {f: clean(row.get(f)) for f in cfg.field_names() if f in new_deals.columns},
                # The deal's owner and collaborators (owner ids) become the create's OpportunityTeam.
                "team_owner_ids": [i for i in str(clean(row.get(TEAM_COLUMN)) or "").split(";") if i],
                "team_title": clean(row.get(TEAM_TITLE_COLUMN)),
                # The deal's other contacts, after the primary (Customer.Contacts[1..]).
                "other_contacts": json.loads(clean(row.get(OTHER_CONTACTS_COLUMN)) or "[]"),
                # The deal's company and primary contact: the new record's baseline links them (commit),
                # which later company/contact changes and customer accounts find the record by.
                "company_id": clean(row.get(COMPANY.frame_column)),
                "contact_id": clean(row.get(CONTACT.frame_column)),
                # What the deal's contacts were when read: a later change of them is found by these.
                "contact_count": clean(row.get(CONTACT_COUNT_COLUMN)),
                "other_contact_ids": clean(row.get(OTHER_CONTACT_IDS_COLUMN)),
            }
            for _, row in new_deals.iterrows()
        ]
    for frame, key_of in ((hs, str), (new_deals, lambda d: f"deal:{d}")):
        if SOLUTIONS_COLUMN in frame.columns:
            for oid, value in frame[SOLUTIONS_COLUMN].dropna().items():
                ids = parse_solution_ids(value)
                if ids:
                    deal = frame.at[oid, "_deal_id"] if frame is new_deals else oid
                    plan.solution_ids[key_of(deal)] = ids
    if direction != Direction.TO_HUBSPOT and OTHER_CONTACTS_COLUMN in hs.columns:
        # Linked deals whose contacts were read this run ("[]": none left); empty where they were not.
        for oid, value in hs[OTHER_CONTACTS_COLUMN].dropna().items():
            if oid in linked and clean(value) is not None:
                plan.other_contacts[str(oid)] = json.loads(value)
                sent = (
                    clean(base.at[oid, "other_contact_emails"])
                    if "other_contact_emails" in base.columns and oid in base.index
                    else None
                )
                now = set(emails_of(plan.other_contacts[str(oid)]))
                dropped = [e for e in (sent or "").split(";") if e and e not in now]
                if dropped:
                    plan.dropped_contacts[str(oid)] = dropped
    if direction != Direction.TO_PARTNER_CENTRAL:
        _plan_contacts_back(plan, cfg, base, pc)
    if cfg.submit_stage and direction != Direction.TO_HUBSPOT:
        _plan_submissions(plan, cfg, base, pc, hs)
    if direction != Direction.TO_HUBSPOT:
        _plan_value_checks(plan, cfg, hs, new_deals)
    return plan


def related_objects(base: pd.DataFrame, hs: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Opportunity id -> ``company`` / ``contact`` -> HubSpot id: this run's read, else the baseline's."""
    from cosell_sync.common import COMPANY, CONTACT, clean

    out: dict[str, dict[str, str]] = {}
    for spec in (COMPANY, CONTACT):
        for frame, column in ((base, spec.baseline_column), (hs, spec.frame_column)):
            if column not in frame.columns:
                continue
            for oid, rid in frame[column].items():
                if clean(rid) is not None:
                    out.setdefault(str(oid), {})[spec.name] = str(clean(rid))
    return out


def _deals_with_journaled_create(env: SyncEnv) -> set[str]:
    """Deals whose opportunity create a dead run journaled (``apply`` finishes and links those)."""
    if env.journal is None:
        return set()
    return {str(e["deal_id"]) for e in env.journal.creates_to_recover()}


def _plan_contacts_back(plan: Plan, cfg: SyncConfig, base: pd.DataFrame, pc: pd.DataFrame) -> None:
    """Other contacts edited in Partner Central: their HubSpot contacts' updates (three-way, in place).

    Compares each opportunity read this run (``_pc_other_contacts``) with the baseline's
    ``other_contacts_agreed``; the deal's contacts as HubSpot holds them now are ``plan.other_contacts``
    where they were read. A member Partner Central's value wins is also set in the deal's contacts the
    update sends (``plan.other_contacts``), so that write does not put HubSpot's old value back.
    """
    from cosell_sync.common import clean
    from cosell_sync.deal_contacts import (
        AGREED_COLUMN,
        PC_OTHER_CONTACTS_COLUMN,
        member_of_field,
        partner_central_contact_changes,
    )

    if PC_OTHER_CONTACTS_COLUMN not in pc.columns or AGREED_COLUMN not in base.columns:
        return
    member_of = member_of_field(cfg)
    agreed_col = base[AGREED_COLUMN]
    for oid, value in pc[PC_OTHER_CONTACTS_COLUMN].items():
        oid = str(oid)
        if clean(value) is None or oid not in base.index or clean(agreed_col.get(oid)) is None:
            continue
        now = json.loads(value)
        found = partner_central_contact_changes(
            json.loads(agreed_col[oid]), now, plan.other_contacts.get(oid), cfg
        )
        for warning in found.warnings:
            log.warning("Opportunity %s: %s", oid, warning)
        for item in found.conflicts:
            log.warning(
                "Opportunity %s: contact %d %s changed on both sides; %s's value kept",
                oid,
                item["position"],
                item["field"],
                "Partner Central" if item["kept"] == "partner_central" else "HubSpot",
            )
            plan.contact_conflicts.append({"opportunity_id": oid, **item})
        if not found.to_hubspot:
            continue
        plan.contacts_to_hubspot[oid] = found.to_hubspot
        plan.contact_positions[oid] = found.positions
        pc_entries = {str(c.get("Email") or "").casefold(): c for c in now}
        for entry in plan.other_contacts.get(oid) or []:
            email = str(entry.get("Email") or "").casefold()
            for name in found.to_hubspot.get(email, {}):
                member = member_of[name]
                if pc_entries[email].get(member) is None:
                    entry.pop(member, None)
                else:
                    entry[member] = pc_entries[email][member]


def _plan_value_checks(plan: Plan, cfg: SyncConfig, hs: pd.DataFrame, new_deals: pd.DataFrame) -> None:
    """HubSpot values that cannot be written to Partner Central fail their record; normalised ones are noted.

    The frame builder cannot convert such a value and the diff treats the field as unchanged, so
    without this the edit would be skipped without a word, run after run. A field Partner Central
    writes back to HubSpot in this run is left out: the PC value replaces the bad one.
    """
    from cosell_sync.mapping import conversion_errors, normalised_values

    for oid, fields in conversion_errors(hs, cfg).items():
        pushed = plan.hubspot_updates.get(oid) or {}
        bad = {name: rule for name, rule in fields.items() if name not in pushed}
        if bad:
            plan.invalid[oid] = bad
            # The record's PC write goes through apply (which fails it without a call) and commit
            # (failed audit entry, retry item), even when it has no other change.
            plan.partner_central_updates.setdefault(oid, {})
    for oid, fields in normalised_values(hs).items():
        written = {
            name: rule for name, rule in fields.items() if name in plan.partner_central_updates.get(oid, {})
        }
        if written:
            plan.normalised[oid] = written
    deal_of = new_deals["_deal_id"].to_dict() if "_deal_id" in new_deals.columns else {}
    for key, fields in conversion_errors(new_deals, cfg).items():
        plan.invalid[f"deal:{deal_of.get(key)}"] = fields
    creates = {f"deal:{item['deal_id']}": item["values"] for item in plan.create_opportunities}
    for key, fields in normalised_values(new_deals).items():
        values = creates.get(f"deal:{deal_of.get(key)}") or {}
        written = {name: rule for name, rule in fields.items() if values.get(name) is not None}
        if written:
            plan.normalised[f"deal:{deal_of.get(key)}"] = written


def _plan_submissions(
    plan: Plan, cfg: SyncConfig, base: pd.DataFrame, pc: pd.DataFrame, hs: pd.DataFrame
) -> None:
    """A co-sell deal entering the configured stage submits its opportunity to AWS."""
    stage_field = next((f.name for f in cfg.fields if f.hubspot == "dealstage"), None)
    target = next((s.partner_central_stage for s in cfg.stages if s.hubspot_stage == cfg.submit_stage), None)
    if not (stage_field and target and stage_field in hs.columns):
        return
    for oid, row in hs.iterrows():
        review = (
            pc["_review_status"].get(oid)
            if oid in pc.index
            else (base["review_status"].get(oid) if "review_status" in base.columns else None)
        )
        before = base.at[oid, stage_field] if oid in base.index and stage_field in base.columns else None
        # A transition, not a state: a deal that sits in the stage after a failed submission is not
        # resubmitted every run; moving it out and back in tries again.
        if row.get(stage_field) == target and before != target and review == "Pending Submission":
            plan.submit.append(str(oid))
    for item in plan.create_opportunities:
        item["submit"] = item["values"].get(stage_field) == target


def store_plan(env: SyncEnv, run: dict[str, Any], plan: Plan) -> str:
    """Write ``plan.json`` next to the run's other artefacts; returns its key."""
    from cosell_sync.storage import run_key

    key = run_key(run["catalog"], run["run_id"], "plan.json")
    env.snapshots.put_json(plan.to_document(), key)
    return key


def log_plan(plan: Plan, dry_run: bool) -> None:
    """Log what the plan will do, record by record (field names only: values may be PII)."""
    prefix = "DRY RUN - would" if dry_run else "Plan:"
    for oid, fields in plan.hubspot_updates.items():
        log.info("%s update HubSpot deal of %s: %s", prefix, oid, ", ".join(sorted(fields)))
    for oid, fields in plan.partner_central_updates.items():
        log.info("%s update opportunity %s: %s", prefix, oid, ", ".join(sorted(fields)))
    for oid in plan.create_deals:
        log.info("%s create a HubSpot deal for opportunity %s", prefix, oid)
    for item in plan.create_opportunities:
        log.info("%s create an opportunity for deal %s", prefix, item["deal_id"])
    for oid in plan.submit:
        log.info("%s submit opportunity %s to AWS", prefix, oid)
    for item in plan.deferred:
        log.info("Deferred %s.%s: %s", item["opportunity_id"], item["field"], item["reason"])
    for item in plan.blocked:
        log.info("Blocked %s.%s: %s", item["opportunity_id"], item["field"], item["reason"])
    for key, fields in plan.invalid.items():
        log.warning(
            "Cannot write %s to Partner Central: %s", key, "; ".join(f"{f}: {r}" for f, r in fields.items())
        )
    for item in plan.conflicts:
        log.info(
            "Manual conflict on %s.%s (conflict %s, %s)",
            item["opportunity_id"],
            item["field"],
            item["conflict_id"],
            item.get("conflict_type", SIMULTANEOUS_UPDATE),
        )
