"""Rolling one co-sell record back to the values it had at a point in time, on both systems.

:func:`rollback` rebuilds each mapped field's value at ``target`` from the audit trail
(:meth:`~cosell_sync.audit.AuditTrail.state_at`: every applied change up to then), reads the record's
current values on both sides (GetOpportunity; the HubSpot deal, company and contact), and plans, per
field, which side must be written to get back to the target. :func:`plan_rollback` is that pure
decision, so it is unit-tested without any API.

A field is rolled back on both sides or not at all, so the two systems never end up disagreeing because
of a rollback. It is skipped, with the reason in the plan and the log, when:

- the audit has no value for it at ``target`` (the sync never wrote it by then: the value is unknown);
- the audit did not keep its value (``audit.value_policy`` is ``hash`` or ``drop`` for the field):
  the plan says ``VALUE_NOT_KEPT`` rather than write a hash or a null back;
- it has a pending manual conflict (a person decides that one with ``cosell_resolve_conflict``);
- Partner Central would have to change but the review state forbids it (``Submitted``/``In review``,
  not editable in ``Action Required``, locked after ``Approved``, ``Rejected``);
- the side that would have to change is never written by the sync for this field (a one-way field);
- its HubSpot object (company, contact) does not exist.

A dry run writes nothing and returns the plan. Otherwise Partner Central is written first (one merged
UpdateOpportunity under the optimistic lock, re-gated on the fresh read), then HubSpot (one batch per
object) for the fields Partner Central accepted, then one ``ROLLBACK`` audit entry per side written, then
the baseline row of the fields both systems now agree on. Every step is safe to repeat: a re-run plans
from the current values again and finds nothing left to write.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cosell_sync.audit import ValueNotKept
from cosell_sync.common import COMPANY, CONTACT, DEAL, AuditAction, Direction, Side, clean, ts_key
from cosell_sync.errors import NotFoundError, ParamError, SyncError

if TYPE_CHECKING:
    from cosell_sync.config import SyncConfig
    from cosell_sync.env import SyncEnv
    from cosell_sync.hubspot_api import HubSpotGateway

log = logging.getLogger(__name__)

PC = Side.PARTNER_CENTRAL.value
HS = Side.HUBSPOT.value
#: Skip reasons (besides the review-state reason codes of :mod:`cosell_sync.gating`).
NOT_IN_AUDIT = "NOT_IN_AUDIT_AT_TARGET"
VALUE_NOT_KEPT = "VALUE_NOT_KEPT"
PENDING_CONFLICT = "PENDING_CONFLICT"
NO_HUBSPOT_OBJECT = "NO_HUBSPOT_OBJECT"
ONE_WAY_FIELD = "ONE_WAY_FIELD"
#: Characters of a value shown in the log table (values are for the operator who asked for them).
SHOWN = 40


@dataclass
class FieldPlan:
    """The rollback decision for one field.

    Attributes:
        field: the mapping field name.
        partner_central: the current canonical value in Partner Central.
        hubspot: the current canonical value in HubSpot.
        target: the value at the target time (None also when unknown: see ``skip_reason``).
        write: the sides to write (``partner_central``, ``hubspot``), empty when nothing changes.
        skip_reason: why the field is not rolled back, or None.
    """

    field: str
    partner_central: str | None
    hubspot: str | None
    target: str | None
    write: list[str] = field(default_factory=list)
    skip_reason: str | None = None

    @property
    def changes(self) -> bool:
        """True when the field differs from the target on at least one side."""
        return self.partner_central != self.target or self.hubspot != self.target


def select_fields(cfg: SyncConfig, fields: list[str] | None) -> list[str]:
    """The mapping fields a rollback covers: the requested ones, or all of them.

    Args:
        cfg: the sync configuration.
        fields: field names; None or empty means every mapped field.

    Returns:
        The names, in config order.

    Raises:
        ParamError: a name is not a mapping field (the message lists the valid names).
    """
    names = cfg.field_names()
    if not fields:
        return names
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise ParamError(f"unknown field(s) {', '.join(unknown)}; mapping fields are: {', '.join(names)}")
    wanted = set(fields)
    return [n for n in names if n in wanted]


def plan_rollback(
    cfg: SyncConfig,
    names: list[str],
    target: dict[str, Any],
    current_pc: dict[str, str | None],
    current_hs: dict[str, str | None],
    *,
    pc_gated: dict[str, str],
    pending: set[str],
    hubspot_objects: dict[str, str | None],
) -> list[FieldPlan]:
    """Decide, per field, which sides to write to restore the target value (no I/O).

    Args:
        cfg: the sync configuration.
        names: the fields to consider.
        target: field -> value at the target time (``AuditTrail.state_at``; absent = unknown;
            :class:`~cosell_sync.audit.ValueNotKept` = hashed/dropped by the value policy: refused).
        current_pc: field -> current canonical Partner Central value.
        current_hs: field -> current canonical HubSpot value.
        pc_gated: field -> reason Partner Central may not be written now (review state).
        pending: fields with a pending manual conflict.
        hubspot_objects: ``deal``/``company``/``contact`` -> id (None: no such object).

    Returns:
        One plan per field in ``names``.
    """
    plans: list[FieldPlan] = []
    for name in names:
        mapping = cfg.field(name)
        known = name in target
        value = target.get(name) if known else None
        if isinstance(value, ValueNotKept):
            # Writing the hash (or a null) back would corrupt the record: refuse the field, saying why.
            kept = "only a hash of the" if value.policy == "hash" else "no"
            reason = (
                f"{VALUE_NOT_KEPT}: the audit keeps {kept} values of this field "
                f"(audit.value_policy: {value.policy}), so it cannot be restored"
            )
            plans.append(
                FieldPlan(name, current_pc.get(name), current_hs.get(name), None, skip_reason=reason)
            )
            continue
        item = FieldPlan(name, current_pc.get(name), current_hs.get(name), value)
        plans.append(item)
        if not known:
            item.skip_reason = NOT_IN_AUDIT
            continue
        if not item.changes:
            continue
        if name in pending:
            item.skip_reason = PENDING_CONFLICT
            continue
        sides = [s for s, v in ((PC, item.partner_central), (HS, item.hubspot)) if v != item.target]
        if PC in sides and mapping.direction == "partner_central_to_hubspot":
            # Partner Central owns this field; rolling back only its HubSpot copy would just be undone.
            item.skip_reason = f"{ONE_WAY_FIELD}: Partner Central owns it and the sync never writes it there"
            continue
        if HS in sides and mapping.direction == "hubspot_to_partner_central":
            item.skip_reason = f"{ONE_WAY_FIELD}: HubSpot owns it and the sync never writes it there"
            continue
        if PC in sides and name in pc_gated:
            item.skip_reason = pc_gated[name]
            continue
        if HS in sides and not hubspot_objects.get(mapping.object):
            item.skip_reason = f"{NO_HUBSPOT_OBJECT}: the deal has no associated {mapping.object}"
            continue
        item.write = sides
    return plans


def format_plan(plans: list[FieldPlan], opportunity_id: str, target: str, dry_run: bool) -> str:
    """The plan as a fixed-width table for the task log.

    Args:
        plans: the field plans.
        opportunity_id: the record.
        target: the target timestamp (as given).
        dry_run: whether this is a dry run.

    Returns:
        The table (fields already at the target are left out).
    """

    def show(value: str | None) -> str:
        text = "<empty>" if value is None else str(value).replace("\n", " ")
        return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."

    head = f"Rollback of {opportunity_id} to {target}{' (DRY RUN: nothing written)' if dry_run else ''}"
    rows = [p for p in plans if p.changes or p.skip_reason == NOT_IN_AUDIT]
    lines = [head, f"{'field':28}{'Partner Central':42}{'HubSpot':42}{'target':42}action"]
    for p in rows:
        unknown = p.skip_reason == NOT_IN_AUDIT
        target_shown = "?" if unknown else show(p.target)
        action = f"skip: {p.skip_reason}" if p.skip_reason else "write " + " + ".join(p.write)
        lines.append(f"{p.field:28}{show(p.partner_central):42}{show(p.hubspot):42}{target_shown:42}{action}")
    unchanged = sum(1 for p in plans if not p.changes and p.skip_reason is None)
    lines.append(
        f"{sum(1 for p in plans if p.write)} field(s) to write, "
        f"{sum(1 for p in plans if p.skip_reason and p.skip_reason != NOT_IN_AUDIT)} skipped, "
        f"{sum(1 for p in plans if p.skip_reason == NOT_IN_AUDIT)} without an audited value, "
        f"{unchanged} already at the target"
    )
    return "\n".join(lines)


def _parse_target(target: str | datetime) -> datetime:
    from cosell_sync.params import param_timestamp

    when = param_timestamp("target_timestamp", target) if isinstance(target, str) else target
    if when is None:
        raise ParamError("target_timestamp is required (ISO 8601, e.g. 2026-11-02T10:00:00Z)")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when > datetime.now(UTC):
        raise ParamError(f"target_timestamp {when.isoformat()} is in the future")
    return when


def _current_hubspot(
    env: SyncEnv, gw: HubSpotGateway, opportunity_id: str, ids: dict[str, str | None]
) -> dict[str, str | None]:
    """The record's HubSpot side as canonical values (deal, company and contact read by id)."""
    from cosell_sync.extract import hubspot_properties
    from cosell_sync.mapping import hubspot_to_frame

    cfg = env.config
    deals, _ = gw.batch_read(DEAL.plural, [ids[DEAL.name]], hubspot_properties(cfg, DEAL.name))
    if not deals:
        raise NotFoundError(
            f"HubSpot deal {ids[DEAL.name]} of {opportunity_id} not found", record_id=opportunity_id
        )
    related: dict[str, dict[str, Any]] = {COMPANY.name: {}, CONTACT.name: {}}
    for spec in (COMPANY, CONTACT):
        if ids.get(spec.name) and any(f.object == spec.name for f in cfg.fields):
            found, _ = gw.batch_read(spec.plural, [ids[spec.name]], hubspot_properties(cfg, spec.name))
            related[spec.name] = {o["id"]: o for o in found}
    deal = deals[0]
    # The frame is keyed by the link property; the deal we read by id is this record's deal.
    deal = {**deal, "properties": {**deal["properties"], cfg.link_property: opportunity_id}}
    frame = hubspot_to_frame(
        [deal],
        related[COMPANY.name],
        related[CONTACT.name],
        {deal["id"]: ids[COMPANY.name]} if ids.get(COMPANY.name) else {},
        {deal["id"]: ids[CONTACT.name]} if ids.get(CONTACT.name) else {},
        cfg,
    )
    row = frame.iloc[0]
    return {f: clean(row.get(f)) for f in cfg.field_names()}


def rollback(
    env: SyncEnv,
    opportunity_id: str,
    target: str | datetime,
    fields: list[str] | None,
    dry_run: bool,
    run_id: str,
    user: str,
    *,
    run_timestamp: datetime | None = None,
    dag_id: str = "cosell_rollback",
) -> dict[str, Any]:
    """Restore one record's fields to their values at ``target`` on both systems (see the module doc).

    Args:
        env: clients and stores.
        opportunity_id: the Partner Central opportunity (linked to a deal).
        target: the point in time (ISO string or aware datetime), in the past.
        fields: mapping field names to restore; None or empty means all.
        dry_run: plan and log only.
        run_id: the Airflow run id (audit and baseline version).
        user: who asked: a principal or user id, never an email address.
        run_timestamp: the run's timestamp for the audit keys (default: now); fixed per run so a
            retried task overwrites its own entries.
        dag_id: the DAG, for the audit metadata.

    Returns:
        ``plan`` (one row per field that differs or is unknown), ``written`` per side, ``skipped``,
        counts and the API calls.

    Raises:
        ParamError: bad target or field names (a ValueError too).
        NotFoundError: the record has no baseline (not linked) or its deal is gone.
        SyncError: a write failed; whatever succeeded before it is audited and committed first.
    """
    import pandas as pd

    from cosell_sync.audit import AuditEntry
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.writers import HubSpotWriter, PartnerCentralWriter

    cfg = env.config
    when = _parse_target(target)
    target_key = ts_key(when)
    names = select_fields(cfg, fields)
    base_row = env.baseline.get(opportunity_id)
    if base_row is None or not clean(base_row.get("deal_id")):
        raise NotFoundError(
            f"opportunity {opportunity_id} has no synced HubSpot deal in the {env.catalog} baseline; "
            "only linked records can be rolled back",
            record_id=opportunity_id,
        )
    deal_id = str(base_row["deal_id"])
    calls: Counter[str] = Counter()
    gw = HubSpotGateway(env.hubspot)
    pc_writer = PartnerCentralWriter(cfg, env.partner_central, env.catalog, calls)
    hubspot = HubSpotWriter(cfg, gw)

    state = env.audit.state_at(opportunity_id, when, deal_id=deal_id)
    current = pc_writer.get(opportunity_id)
    current_pc = pc_writer.canonical(current)
    review_status = (current.get("LifeCycle") or {}).get("ReviewStatus")
    ids = hubspot.object_ids(deal_id, base_row)
    current_hs = _current_hubspot(env, gw, opportunity_id, ids)
    pending = {c["field"] for c in env.conflicts.pending(opportunity_id)}
    plans = plan_rollback(
        cfg,
        names,
        {k: v if isinstance(v, ValueNotKept) else clean(v) for k, v in state.items()},
        current_pc,
        current_hs,
        pc_gated=pc_writer.gate(review_status, names),
        pending=pending,
        hubspot_objects=ids,
    )
    log.info("\n%s", format_plan(plans, opportunity_id, target_key, dry_run))
    shown = [asdict(p) for p in plans if p.changes or p.skip_reason == NOT_IN_AUDIT]
    result: dict[str, Any] = {
        "opportunity_id": opportunity_id,
        "deal_id": deal_id,
        "target_timestamp": target_key,
        "dry_run": dry_run,
        "review_status": review_status,
        "plan": shown,
        "skipped": {p.field: p.skip_reason for p in plans if p.skip_reason and p.skip_reason != NOT_IN_AUDIT},
        "not_in_audit": [p.field for p in plans if p.skip_reason == NOT_IN_AUDIT],
        "written": {PC: {}, HS: {}},
    }
    to_pc = {p.field: p.target for p in plans if PC in p.write}
    to_hs = {p.field: p.target for p in plans if HS in p.write}
    if dry_run or not (to_pc or to_hs):
        result["api_calls"] = {**dict(calls), **dict(gw.calls)}
        if not dry_run:
            log.info("Nothing to roll back: every covered field already holds its value at %s", target_key)
        return result

    when_run = run_timestamp or datetime.now(UTC)
    entries: list[AuditEntry] = []
    errors: list[SyncError] = []
    meta = {"runId": run_id, "dagId": dag_id, "targetTimestamp": target_key}

    def audit(direction: str, source: str, changes: dict[str, Any], ok: bool, err: SyncError | None) -> None:
        entries.append(
            AuditEntry(
                opportunity_id=opportunity_id,
                deal_id=deal_id,
                run_id=run_id.replace("#", "_"),
                run_timestamp=when_run,
                direction=direction,
                action=AuditAction.ROLLBACK,
                source=source,
                user=user,
                changes={f: {"old": old, "new": new} for f, (old, new) in changes.items()},
                success=ok,
                error=err.to_dict() if err else None,
                api_calls=sorted(calls) if direction == Direction.TO_PARTNER_CENTRAL else sorted(gw.calls),
                metadata=meta,
            )
        )

    # 1. Partner Central first: it is the side with rules (lock, review state); HubSpot follows it.
    pc_written: dict[str, str | None] = {}
    pc_refused: dict[str, str] = {}
    last_modified: str | None = None
    if to_pc:
        try:
            outcome = pc_writer.update(opportunity_id, to_pc, current=current)
            pc_refused = outcome.gated  # the review moved between the plan and the write
            pc_written = {f: v for f, v in to_pc.items() if f not in pc_refused}
            last_modified = outcome.last_modified
        except SyncError as err:
            log.error("Rolling back %s in Partner Central failed: %s", opportunity_id, err.message)
            errors.append(err)
            pc_refused = dict.fromkeys(to_pc, f"FAILED: {err.code or type(err).__name__}")
        changes = {f: (current_pc[f], to_pc[f]) for f in (pc_written or to_pc)}
        if pc_written or errors:
            audit(Direction.TO_PARTNER_CENTRAL, "HUBSPOT", changes, not errors, errors[0] if errors else None)
    for name, reason in pc_refused.items():
        result["skipped"][name] = reason
    # 2. HubSpot, for the fields Partner Central accepted (or did not need).
    hs_changes = {f: v for f, v in to_hs.items() if f not in pc_refused}
    hs_written: dict[str, str | None] = {}
    if hs_changes:
        try:
            hs_written = hubspot.write_record(opportunity_id, hs_changes, ids)
            changes = {f: (current_hs[f], v) for f, v in hs_written.items()}
            audit(Direction.TO_HUBSPOT, "PARTNER_CENTRAL", changes, True, None)
        except SyncError as err:
            log.error("Rolling back %s in HubSpot failed: %s", opportunity_id, err.message)
            errors.append(err)
            changes = {f: (current_hs[f], v) for f, v in hs_changes.items()}
            audit(Direction.TO_HUBSPOT, "PARTNER_CENTRAL", changes, False, err)
            for name in hs_changes:
                result["skipped"][name] = f"FAILED: {err.code or type(err).__name__}"
    env.audit.write(entries)

    # 3. Baseline: the fields both systems now hold at the target value.
    agreed: dict[str, Any] = {}
    for p in plans:
        if p.skip_reason or p.field in result["skipped"]:
            continue
        # A side not written already held the target; a side written holds it now.
        pc_ok = PC not in p.write or p.field in pc_written
        hs_ok = HS not in p.write or p.field in hs_written
        if pc_ok and hs_ok:
            agreed[p.field] = p.target
    if agreed:
        if pc_written and last_modified:
            agreed["pc_last_modified"] = last_modified
        frame = pd.DataFrame([agreed], index=pd.Index([opportunity_id], name="opportunity_id"), dtype=object)
        env.baseline.commit(frame, run_id)

    result["written"] = {PC: pc_written, HS: hs_written}
    result["api_calls"] = {**dict(calls), **dict(gw.calls)}
    log.info(
        "Rolled back %s to %s: %d field(s) written to Partner Central, %d to HubSpot, %d skipped%s",
        opportunity_id,
        target_key,
        len(pc_written),
        len(hs_written),
        len(result["skipped"]),
        "".join(f"\n  skipped {f}: {r}" for f, r in sorted(result["skipped"].items())),
    )
    if errors:
        raise errors[0]
    return result
