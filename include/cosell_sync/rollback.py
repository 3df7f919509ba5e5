"""Rolling a co-sell record back to the values it had at a point in time, or undoing one sync run.

:func:`rollback` rebuilds each mapped field's value at ``target`` from the audit trail
(:meth:`~cosell_sync.audit.AuditTrail.state_at`: every applied change up to then), reads the record's
current values on both sides (GetOpportunity; the HubSpot deal, company and contact), and plans, per
field, which side must be written to get back to the target. :func:`plan_rollback` is that pure
decision, so it is unit-tested without any API.

With ``systems`` ``both`` (the default) a field is rolled back on both sides or not at all, so the two
systems never end up disagreeing because of a rollback. A field is skipped, with the reason in the plan
and the log, when:

- the audit has no value for it at ``target`` (the sync never wrote it by then: the value is unknown);
- the audit did not keep its value (``audit.value_policy`` is ``hash`` or ``drop`` for the field):
  the plan says ``VALUE_NOT_KEPT`` rather than write a hash or a null back;
- it has a pending manual conflict (a person decides that one with ``cosell_resolve_conflict``);
- Partner Central would have to change but the review state forbids it (``Submitted``/``In review``,
  not editable in ``Action Required``, locked after ``Approved``, ``Rejected``);
- the side that would have to change is never written by the sync for this field (a one-way field);
- its HubSpot object (company, contact) does not exist.

Three ways to name what to roll back (the ``cosell_rollback`` task checks that exactly one is given):
an opportunity id (:func:`rollback`), a HubSpot deal id (:func:`resolve_deal`: the baseline's link,
else the deal's ``aws_opportunity_id``), or a ``cosell_reconcile`` run id (:func:`rollback_run` with
:func:`run_targets`: every record the run changed, each field restored to the value it had just before
that run, the ``old`` value of the run's own audit entries). A run rollback leaves alone a field changed
again since that run (``CHANGED_SINCE_RUN``): it would overwrite a newer edit, not undo the run.

``systems`` restricts the writes to one side (``hubspot`` or ``partner_central``; default ``both``). The
other side is not touched, and the baseline of a field the two sides then disagree on is left as it
was: the next ``cosell_reconcile`` sees the rolled-back side as changed since the last sync and carries
its value over to the other side like a person's edit (review-state gating and conflict strategies
apply; a field that also changed on the other side meanwhile is a conflict). A field the sync never
carries that way (a one-way field owned by the other side) is skipped, since the next run would undo it.

Both also restore the HubSpot contacts the sync wrote from other contacts edited in Partner Central
(``UPDATE_CONTACT`` entries; :func:`_restore_other_contacts`): a run rollback the values before that run,
a rollback to a point in time the values before the sync's first write of each contact field after it.
Not when ``systems`` is ``partner_central``; the opportunity follows at the next reconcile.

A dry run writes nothing and returns the plan. Otherwise Partner Central is written first (one merged
UpdateOpportunity under the optimistic lock, re-gated on the fresh read), then HubSpot (one batch per
object) for the fields Partner Central accepted, then one ``ROLLBACK`` audit entry per side written, then
the baseline row of the fields both systems now agree on. Every step is safe to repeat: a re-run plans
from the current values again and finds nothing left to write.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cosell_sync.audit import ValueNotKept
from cosell_sync.common import COMPANY, CONTACT, DEAL, AuditAction, Direction, Side, clean, ts_key
from cosell_sync.errors import NotFoundError, ParamError, SyncError
from cosell_sync.storage import utc_iso

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
CHANGED_SINCE_RUN = "CHANGED_SINCE_RUN"
NOT_SELECTED = "SYSTEM_NOT_SELECTED"
CREATED_BY_RUN = "CREATED_BY_RUN"
#: The ``systems`` a rollback may write.
SYSTEMS = ("both", "hubspot", "partner_central")
#: Values up to this many characters are shown whole in the log table; longer ones as a diff.
LONG = 60


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
    systems: str = "both",
    run_values: dict[str, Any] | None = None,
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
        systems: ``both``, ``hubspot`` or ``partner_central``: the sides that may be written.
        run_values: for a run rollback, field -> the value that run wrote; a field whose sides hold
            neither that value nor the target was changed since, and is skipped (``CHANGED_SINCE_RUN``).

    Returns:
        One plan per field in ``names``.
    """
    if systems not in SYSTEMS:
        raise ParamError(f"systems must be one of {', '.join(SYSTEMS)}")
    allowed = (PC, HS) if systems == "both" else (systems,)
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
        if run_values is not None and name in run_values:
            since = {item.partner_central, item.hubspot} - {run_values[name], item.target}
            if since:
                item.skip_reason = f"{CHANGED_SINCE_RUN}: changed again after that run; not overwritten"
                continue
        differ = [s for s, v in ((PC, item.partner_central), (HS, item.hubspot)) if v != item.target]
        sides = [s for s in differ if s in allowed]
        if not sides:
            item.skip_reason = f"{NOT_SELECTED}: only the {differ[0]} side differs and it is not rolled back"
            continue
        if len(sides) < len(differ):
            # One-sided: the next reconcile must carry the value over, so the field must sync that way.
            carries = {HS: "hubspot_to_partner_central", PC: "partner_central_to_hubspot"}[sides[0]]
            if mapping.direction not in ("both", carries):
                item.skip_reason = (
                    f"{ONE_WAY_FIELD}: the sync never carries it from {sides[0]} to the other side, "
                    "so the next run would undo a one-sided rollback"
                )
                continue
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


def char_diff(old: str, new: str, context: int = 12) -> str:
    """A one-line diff from ``old`` to ``new``, word by word: ``[-removed-]{+added+}``.

    Words (and the whitespace between them) are compared, so an edit shows as whole words. Unchanged
    stretches are shortened to ``context`` characters on each side of an edit around
    ``...(N unchanged)...``, so a long value with a small edit shows just the edit and where it is.

    Args:
        old: the value now.
        new: the value it becomes.
        context: unchanged characters kept on each side of an edit.

    Returns:
        The diff text (newlines shown as a backslash and ``n``).
    """
    if not old or not new:
        return ((f"[-{old}-]" if old else "") + (f"{{+{new}+}}" if new else "")).replace("\n", "\\n")
    a, b = re.split(r"(\s+)", old), re.split(r"(\s+)", new)
    out: list[str] = []
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    for i, (tag, a1, a2, b1, b2) in enumerate(ops):
        if tag == "equal":
            text = "".join(a[a1:a2])
            head = text[:context] if i > 0 else ""
            tail = text[-context:] if i < len(ops) - 1 else ""
            if len(text) > len(head) + len(tail) + 20:
                out.append(f"{head}...({len(text) - len(head) - len(tail)} unchanged)...{tail}")
            else:
                out.append(text)
            continue
        if tag in ("replace", "delete"):
            out.append(f"[-{''.join(a[a1:a2])}-]")
        if tag in ("replace", "insert"):
            out.append(f"{{+{''.join(b[b1:b2])}+}}")
    return "".join(out).replace("\n", "\\n")


def _shown(value: str | None) -> str:
    return "<empty>" if value is None else str(value).replace("\n", "\\n")


def format_plan(plans: list[FieldPlan], opportunity_id: str, target: str, dry_run: bool) -> str:
    """The plan as a table for the task log: whole values, and a diff for long ones.

    A value of up to :data:`LONG` characters is shown whole in its column. A longer one is shown in
    the table by its length, and below the table as a character diff from each side's current value
    to the target (:func:`char_diff`), so an edit in a long description is seen exactly, never cut.

    Args:
        plans: the field plans.
        opportunity_id: the record.
        target: what the record is rolled back to (a timestamp, or a run), as given.
        dry_run: whether this is a dry run.

    Returns:
        The table (fields already at the target are left out).
    """
    head = f"Rollback of {opportunity_id} to {target}{' (DRY RUN: nothing written)' if dry_run else ''}"
    rows = [p for p in plans if p.changes or p.skip_reason == NOT_IN_AUDIT]
    long_fields: list[FieldPlan] = []

    def cell(p: FieldPlan, value: str | None) -> str:
        text = _shown(value)
        if len(text) <= LONG:
            return text
        if p not in long_fields:
            long_fields.append(p)
        return f"<{len(text)} chars: diff below>"

    table = []
    for p in rows:
        unknown = p.skip_reason == NOT_IN_AUDIT
        action = f"skip: {p.skip_reason}" if p.skip_reason else "write " + " + ".join(p.write)
        target_cell = "?" if unknown else cell(p, p.target)
        table.append((p.field, cell(p, p.partner_central), cell(p, p.hubspot), target_cell, action))
    header = ("field", "Partner Central", "HubSpot", "target", "action")
    widths = [max(len(r[i]) for r in [header, *table]) + 2 for i in range(4)]
    lines = [head]
    for r in [header, *table]:
        lines.append("".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + r[4])
    for p in long_fields:
        if p.skip_reason == NOT_IN_AUDIT:
            continue
        target_text = "" if p.target is None else str(p.target)
        lines.append(f"{p.field} (long values): change from each side's current value to the target")
        for side, value in (("Partner Central", p.partner_central), ("HubSpot", p.hubspot)):
            if value == p.target:
                lines.append(f"  {side}: already at the target")
            elif side == "HubSpot" and value == p.partner_central:
                lines.append(f"  {side}: same as Partner Central")
            else:
                lines.append(f"  {side}: {char_diff('' if value is None else str(value), target_text)}")
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


@dataclass
class _Call:
    """What one rollback run writes with: its ids, user and audit metadata (shared by its records)."""

    run_id: str
    user: str
    dag_id: str
    dry_run: bool
    systems: str
    run_timestamp: datetime


def _check_linked(env: SyncEnv, opportunity_id: str, base_row: dict[str, Any] | None) -> str:
    """The record's deal id, or NotFoundError when it has no synced deal in the baseline."""
    if base_row is None or not clean(base_row.get("deal_id")):
        raise NotFoundError(
            f"opportunity {opportunity_id} has no synced HubSpot deal in the {env.catalog} baseline; "
            "only linked records can be rolled back",
            record_id=opportunity_id,
        )
    return str(base_row["deal_id"])


def _rollback_record(
    env: SyncEnv,
    call: _Call,
    opportunity_id: str,
    base_row: dict[str, Any] | None,
    names: list[str],
    state: dict[str, Any],
    *,
    label: str,
    meta: dict[str, Any],
    run_values: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None, list[SyncError]]:
    """Plan and (unless a dry run) write one record's rollback; audit it.

    Returns:
        The record's result, its baseline row (the fields both systems now agree on; None when none),
        and the write errors (everything that succeeded before them is audited).
    """
    from cosell_sync.audit import AuditEntry
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.writers import HubSpotWriter, PartnerCentralWriter

    cfg = env.config
    deal_id = _check_linked(env, opportunity_id, base_row)
    calls: Counter[str] = Counter()
    gw = HubSpotGateway(env.hubspot)
    pc_writer = PartnerCentralWriter(cfg, env.partner_central, env.catalog, calls)
    hubspot = HubSpotWriter(cfg, gw)

    current = pc_writer.get(opportunity_id)
    current_pc = pc_writer.canonical(current)
    review_status = (current.get("LifeCycle") or {}).get("ReviewStatus")
    ids = hubspot.object_ids(deal_id, base_row or {})
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
        systems=call.systems,
        run_values=run_values,
    )
    log.info("\n%s", format_plan(plans, opportunity_id, label, call.dry_run))
    shown = [asdict(p) for p in plans if p.changes or p.skip_reason == NOT_IN_AUDIT]
    result: dict[str, Any] = {
        "opportunity_id": opportunity_id,
        "deal_id": deal_id,
        "dry_run": call.dry_run,
        "systems": call.systems,
        "review_status": review_status,
        "plan": shown,
        "skipped": {p.field: p.skip_reason for p in plans if p.skip_reason and p.skip_reason != NOT_IN_AUDIT},
        "not_in_audit": [p.field for p in plans if p.skip_reason == NOT_IN_AUDIT],
        "written": {PC: {}, HS: {}},
    }
    to_pc = {p.field: p.target for p in plans if PC in p.write}
    to_hs = {p.field: p.target for p in plans if HS in p.write}
    if call.dry_run or not (to_pc or to_hs):
        result["api_calls"] = {**dict(calls), **dict(gw.calls)}
        if not call.dry_run:
            log.info(
                "Nothing to roll back on %s: every covered field already holds its value", opportunity_id
            )
        return result, None, []

    entries: list[AuditEntry] = []
    errors: list[SyncError] = []
    audit_meta = {"runId": call.run_id, "dagId": call.dag_id, "systems": call.systems, **meta}

    def audit(direction: str, source: str, changes: dict[str, Any], ok: bool, err: SyncError | None) -> None:
        entries.append(
            AuditEntry(
                opportunity_id=opportunity_id,
                deal_id=deal_id,
                run_id=call.run_id.replace("#", "_"),
                run_timestamp=call.run_timestamp,
                direction=direction,
                action=AuditAction.ROLLBACK,
                source=source,
                user=call.user,
                changes={f: {"old": old, "new": new} for f, (old, new) in changes.items()},
                success=ok,
                error=err.to_dict() if err else None,
                api_calls=sorted(calls) if direction == Direction.TO_PARTNER_CENTRAL else sorted(gw.calls),
                metadata=audit_meta,
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

    # 3. Baseline: the fields both systems now hold at the target value. A one-sided rollback leaves
    # the baseline of a field the sides disagree on as it was, so the next reconcile sees the written
    # side as changed since the last sync and carries its value over (see the module docstring).
    agreed: dict[str, Any] = {}
    for p in plans:
        if p.skip_reason or p.field in result["skipped"]:
            continue
        pc_now = p.target if p.field in pc_written else p.partner_central
        hs_now = p.target if p.field in hs_written else p.hubspot
        if pc_now == p.target and hs_now == p.target:
            agreed[p.field] = p.target
    row: dict[str, Any] | None = None
    if agreed:
        if pc_written and last_modified:
            agreed["pc_last_modified"] = last_modified
        row = {"opportunity_id": opportunity_id, **agreed}
    result["written"] = {PC: pc_written, HS: hs_written}
    result["api_calls"] = {**dict(calls), **dict(gw.calls)}
    log.info(
        "Rolled back %s to %s: %d field(s) written to Partner Central, %d to HubSpot, %d skipped%s",
        opportunity_id,
        label,
        len(pc_written),
        len(hs_written),
        len(result["skipped"]),
        "".join(f"\n  skipped {f}: {r}" for f, r in sorted(result["skipped"].items())),
    )
    return result, row, errors


def _commit_rows(env: SyncEnv, rows: list[dict[str, Any] | None], run_id: str) -> None:
    """Commit the baseline rows of a rollback, grouped by columns (a commit changes only its columns)."""
    import pandas as pd

    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if row:
            groups.setdefault(tuple(sorted(row)), []).append(row)
    for group in groups.values():
        frame = pd.DataFrame(group, dtype=object).set_index("opportunity_id")
        env.baseline.commit(frame, run_id)


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
    systems: str = "both",
) -> dict[str, Any]:
    """Restore one record's fields to their values at ``target`` (see the module doc).

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
        systems: ``both`` (default), ``hubspot`` or ``partner_central``: the sides written.

    Returns:
        ``plan`` (one row per field that differs or is unknown), ``written`` per side, ``skipped``,
        counts and the API calls.

    Raises:
        ParamError: bad target, field names or systems (a ValueError too).
        NotFoundError: the record has no baseline (not linked) or its deal is gone.
        SyncError: a write failed; whatever succeeded before it is audited and committed first.
    """
    cfg = env.config
    if systems not in SYSTEMS:
        raise ParamError(f"systems must be one of {', '.join(SYSTEMS)}")
    when = _parse_target(target)
    target_key = ts_key(when)
    names = select_fields(cfg, fields)
    base_row = env.baseline.get(opportunity_id)
    deal_id = _check_linked(env, opportunity_id, base_row)
    call = _Call(run_id, user, dag_id, dry_run, systems, run_timestamp or datetime.now(UTC))
    state = env.audit.state_at(opportunity_id, when, deal_id=deal_id)
    result, row, errors = _rollback_record(
        env,
        call,
        opportunity_id,
        base_row,
        names,
        state,
        label=target_key,
        meta={"targetTimestamp": target_key},
    )
    _commit_rows(env, [row], run_id)
    contacts = (
        _restore_other_contacts(env, call, set(names), opportunity_id=opportunity_id, target=when)
        if systems != "partner_central"
        else {}
    )
    if errors:
        raise errors[0]
    return {**result, "target_timestamp": target_key, "other_contacts": contacts}


def resolve_deal(env: SyncEnv, deal_id: str) -> str:
    """The opportunity a HubSpot deal is linked to: the baseline's pair, else the deal's link property.

    Args:
        env: clients and stores.
        deal_id: the HubSpot deal id.

    Returns:
        The opportunity id.

    Raises:
        NotFoundError: the deal does not exist, or is linked to no opportunity.
    """
    from cosell_sync.hubspot_api import HubSpotGateway

    base = env.baseline.load()
    if "deal_id" in base.columns:
        hits = [str(o) for o, d in base["deal_id"].items() if clean(d) and str(d) == str(deal_id)]
        if hits:
            return hits[0]
    gw = HubSpotGateway(env.hubspot)
    link = env.config.link_property
    found, _ = gw.batch_read(DEAL.plural, [str(deal_id)], [link])
    if not found:
        raise NotFoundError(f"HubSpot deal {deal_id} not found", record_id=str(deal_id))
    opportunity_id = clean((found[0].get("properties") or {}).get(link))
    if not opportunity_id:
        raise NotFoundError(
            f"HubSpot deal {deal_id} is not linked to a Partner Central opportunity ({link} is empty); "
            "only linked records can be rolled back",
            record_id=str(deal_id),
        )
    return str(opportunity_id)


@dataclass
class RunChanges:
    """What one sync run changed on one record: per field, the value before it and the value it wrote.

    Attributes:
        before: field -> the value just before the run (:class:`ValueNotKept` when not kept).
        wrote: field -> the value the run wrote.
    """

    before: dict[str, Any] = field(default_factory=dict)
    wrote: dict[str, Any] = field(default_factory=dict)


def run_targets(env: SyncEnv, sync_run_id: str) -> tuple[dict[str, RunChanges], dict[str, str]]:
    """Every record a ``cosell_reconcile`` run changed, with each field's value before that run.

    The run's change set (``RunReport.read_changes``: one row per audited field change) names the
    records; their audit entries of that run (``metadata.runId``) give the values, under the audit's
    value policy: a field whose value was not kept comes back as :class:`ValueNotKept` and is refused.
    Before a run, both systems held the baseline value of every field it changed, so that one
    ``old`` value is the target of both sides.

    Args:
        env: clients and stores.
        sync_run_id: the ``cosell_reconcile`` run id.

    Returns:
        Opportunity id -> :class:`RunChanges`, and the records the run created (``key -> reason``):
        a create is not undone (nothing to restore; delete the record by hand if it must go).

    Raises:
        NotFoundError: the run left no change set in this catalog (unknown run id, a dry run, or a
            run that did not reach ``commit``: the run that audits its writes later adds them to its
            change set, so it can be rolled back from then on).
    """
    from cosell_sync.audit import APPLIED_ACTIONS, RunReport

    try:
        frame = RunReport(env.snapshots, env.catalog, sync_run_id).read_changes()
    except NotFoundError as err:
        raise NotFoundError(
            f"run {sync_run_id} left no change set in catalog {env.catalog}: not a cosell_reconcile run "
            "id, a dry run, or a run that did not reach commit and whose writes no later run has audited yet"
        ) from err
    applied = frame[frame["success"].astype(bool) & frame["action"].isin([str(a) for a in APPLIED_ACTIONS])]
    created: dict[str, str] = {}
    records: list[str] = []
    for row in applied.itertuples(index=False):
        oid, action = clean(row.opportunity_id), str(row.action)
        if action in (AuditAction.CREATE_DEAL, AuditAction.CREATE_OPPORTUNITY):
            key = oid or f"deal:{row.deal_id}"
            created[str(key)] = f"{CREATED_BY_RUN}: {action} is not undone by a rollback"
        elif oid and oid not in records:
            records.append(str(oid))
    wanted = sync_run_id.replace("#", "_")
    out: dict[str, RunChanges] = {}
    for oid in records:
        if oid in created:
            continue
        changes = RunChanges()
        # Oldest first: when a run changed a field twice, the first entry's "old" is the value before it.
        for item in reversed(env.audit.history(oid, limit=None)):
            run_of = str((item.get("metadata") or {}).get("runId") or "")
            if run_of.replace("#", "_") != wanted or not item.get("success"):
                continue
            if item.get("action") not in APPLIED_ACTIONS:
                continue
            not_kept = item.get("valuePolicy") or {}
            for name, change in (item.get("changes") or {}).items():
                if name not in changes.before:
                    kept = name not in not_kept
                    changes.before[name] = change.get("old") if kept else ValueNotKept(not_kept[name])
                changes.wrote[name] = clean(change.get("new"))
        if changes.before:
            out[oid] = changes
    return out, created


def rollback_run(
    env: SyncEnv,
    sync_run_id: str,
    fields: list[str] | None,
    dry_run: bool,
    run_id: str,
    user: str,
    *,
    run_timestamp: datetime | None = None,
    dag_id: str = "cosell_rollback",
    systems: str = "both",
) -> dict[str, Any]:
    """Undo what one ``cosell_reconcile`` run changed, on every record it touched (see the module doc).

    Each record is rolled back like :func:`rollback`, its fields restored to their values just before
    that run; a failed record does not stop the others (the first error is raised at the end, after
    everything that succeeded is audited and committed).

    Args:
        env: clients and stores.
        sync_run_id: the ``cosell_reconcile`` run to undo.
        fields: restrict to these mapping fields; None or empty: every field the run changed.
        dry_run: plan and log only.
        run_id: this rollback's Airflow run id.
        user: who asked (an id, never an email address).
        run_timestamp: the audit keys' timestamp (fixed per run).
        dag_id: the DAG, for the audit metadata.
        systems: ``both`` (default), ``hubspot`` or ``partner_central``.

    Returns:
        ``records`` (opportunity id -> the per-record result), ``created`` (records the run created,
        not undone), ``failed`` (opportunity id -> error) and totals.
    """
    cfg = env.config
    if systems not in SYSTEMS:
        raise ParamError(f"systems must be one of {', '.join(SYSTEMS)}")
    wanted = set(select_fields(cfg, fields))
    targets, created = run_targets(env, sync_run_id)
    base = env.baseline.load()
    call = _Call(run_id, user, dag_id, dry_run, systems, run_timestamp or datetime.now(UTC))
    records: dict[str, Any] = {}
    failed: dict[str, Any] = {}
    rows: list[dict[str, Any] | None] = []
    errors: list[SyncError] = []
    for oid, changes in sorted(targets.items()):
        names = [n for n in cfg.field_names() if n in changes.before and n in wanted]
        if not names:
            continue
        base_row = base.loc[oid].to_dict() if oid in base.index else None
        try:
            result, row, errs = _rollback_record(
                env,
                call,
                oid,
                base_row,
                names,
                {n: changes.before[n] for n in names},
                label=f"before run {sync_run_id}",
                meta={"rolledBackRun": sync_run_id},
                run_values={n: changes.wrote.get(n) for n in names},
            )
        except NotFoundError as err:
            log.error("Record %s of run %s cannot be rolled back: %s", oid, sync_run_id, err.message)
            failed[oid] = err.to_dict()
            continue
        records[oid] = result
        rows.append(row)
        errors += errs
        if errs:
            failed[oid] = errs[0].to_dict()
    _commit_rows(env, rows, run_id)
    contacts = (
        _restore_other_contacts(env, call, wanted, sync_run_id=sync_run_id)
        if systems != "partner_central"
        else {}
    )
    written = sum(len(r["written"][PC]) + len(r["written"][HS]) for r in records.values())
    log.info(
        "Rollback of run %s%s: %d record(s) planned, %d field write(s), %d record(s) failed, "
        "%d created by the run (not undone)",
        sync_run_id,
        " (DRY RUN)" if dry_run else "",
        len(records),
        written,
        len(failed),
        len(created),
    )
    out = {
        "rolled_back_run": sync_run_id,
        "dry_run": dry_run,
        "systems": systems,
        "records": records,
        "created": created,
        "failed": failed,
        "other_contacts": contacts,
    }
    if errors:
        raise errors[0]
    return out


#: An ``UPDATE_CONTACT`` audit key: ``contact_job_title (contact 3)``.
_CONTACT_KEY = re.compile(r"^(?P<field>\w+) \(contact (?P<position>\d+)\)$")


def _position_of(key: str) -> str:
    """``contact 3`` of the audit key ``contact_job_title (contact 3)``."""
    found = _CONTACT_KEY.match(key)
    return f"contact {found['position']}" if found else key


def _contact_writes(
    env: SyncEnv,
    oid: str,
    wanted: set[str],
    *,
    run_id: str | None = None,
    since: datetime | None = None,
) -> list[tuple[str, str, str, str, Any, Any]]:
    """The sync's successful writes of one record's other contacts, as what a rollback restores.

    ``run_id``: that run's ``UPDATE_CONTACT`` entries. ``since``: every ``UPDATE_CONTACT`` and
    ``ROLLBACK_CONTACT`` entry of a run after that time, folded per contact field: the value before the
    first (the one at ``since``) and the value after the last (what the contact should still hold).

    Returns:
        ``(opportunity id, audit key, field, HubSpot contact id, value to restore, value expected now)``.
    """
    wanted_run = run_id.replace("#", "_") if run_id else None
    actions = {AuditAction.UPDATE_CONTACT} if run_id else {AuditAction.UPDATE_CONTACT, "ROLLBACK_CONTACT"}
    history = env.audit.history(oid, limit=None, start=since)
    folded: dict[tuple[str, str], list[Any]] = {}  # (contact id, key) -> [field, first old, last new]
    for item in reversed(history):  # oldest first
        meta = item.get("metadata") or {}
        if item.get("action") not in actions or not item.get("success"):
            continue
        if wanted_run and str(meta.get("runId") or "").replace("#", "_") != wanted_run:
            continue
        if since is not None and str(item.get("SK") or "").split("#", 1)[0] <= utc_iso(since):
            continue  # a run at the target itself: its writes are part of the state at the target
        for key, change in (item.get("changes") or {}).items():
            found = _CONTACT_KEY.match(key)
            contact = (meta.get("contactIds") or {}).get(_position_of(key)) if found else None
            if not found or not contact or found["field"] not in wanted:
                continue
            slot = folded.setdefault((str(contact), key), [found["field"], change.get("old"), None])
            slot[2] = change.get("new")
    return [(oid, key, f, contact, old, new) for (contact, key), (f, old, new) in folded.items()]


def _restore_other_contacts(
    env: SyncEnv,
    call: _Call,
    wanted: set[str],
    *,
    sync_run_id: str | None = None,
    opportunity_id: str | None = None,
    target: datetime | None = None,
) -> dict[str, dict[str, Any]]:
    """Restore other contacts' HubSpot contacts the sync wrote (``UPDATE_CONTACT`` entries).

    For a run (``sync_run_id``): the values before that run's writes. For a record at a point in time
    (``opportunity_id`` and ``target``): the values before the first of the sync's writes (and rollbacks)
    of each contact field after ``target``; a field the sync did not write since is not touched (its
    value at ``target`` is not on the audit trail). Each value is restored on the HubSpot contact the
    entry names (``metadata.contactIds``) unless the contact changed again since the sync's last write
    (``CHANGED_SINCE_RUN``). The opportunity follows at the next reconcile: its deal's contacts changed in
    HubSpot and are sent, like a person's edit. One ``ROLLBACK_CONTACT`` audit entry per record.

    Returns:
        Opportunity id -> ``{"restore": [keys], "skipped": {key: reason}}`` (``restore``: restored, or
        to restore in a dry run).
    """
    from cosell_sync.audit import AuditEntry, RunReport
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.mapping import changes_to_hubspot
    from cosell_sync.transforms import TransformError, converters_for

    if sync_run_id is not None:
        frame = RunReport(env.snapshots, env.catalog, sync_run_id).read_changes()
        if frame.empty or "action" not in frame.columns:
            return {}
        oids = sorted(
            {str(o) for o in frame.loc[frame["action"] == AuditAction.UPDATE_CONTACT, "opportunity_id"]}
        )
        todo = [t for oid in oids for t in _contact_writes(env, oid, wanted, run_id=sync_run_id)]
        about: dict[str, Any] = {"rolledBackRun": sync_run_id}
    else:
        if opportunity_id is None or target is None:
            raise ValueError("a rollback of other contacts needs a run id, or a record and a point in time")
        todo = _contact_writes(env, opportunity_id, wanted, since=target)
        about = {"targetTimestamp": ts_key(target)}
    if not todo:
        return {}
    cfg = env.config
    convs = converters_for(cfg)
    gw = HubSpotGateway(env.hubspot)
    props = sorted({cfg.field(f).hubspot for _, _, f, _, _, _ in todo})
    current, _ = gw.batch_read(CONTACT.plural, sorted({t for _, _, _, t, _, _ in todo}), props)
    now = {str(c["id"]): c.get("properties") or {} for c in current}
    out: dict[str, dict[str, Any]] = {}
    writes: dict[str, dict[str, str]] = {}
    audited: dict[str, dict[str, dict[str, Any]]] = {}
    contact_ids: dict[str, dict[str, str]] = {}
    for oid, key, name, contact, old, new in todo:
        result = out.setdefault(oid, {"restore": [], "skipped": {}})
        conv = convs[name]
        try:
            held = conv.from_hubspot(now.get(contact, {}).get(cfg.field(name).hubspot))
            restore = conv.from_partner_central(old)
        except TransformError as err:
            result["skipped"][key] = err.message
            continue
        if contact not in now:
            result["skipped"][key] = NO_HUBSPOT_OBJECT
        elif held == restore:
            continue  # already holds it (restored before): nothing to write
        elif held != clean(new):
            result["skipped"][key] = CHANGED_SINCE_RUN  # a newer edit: not the sync's value any more
        else:
            writes.setdefault(contact, {}).update(changes_to_hubspot({name: restore}, cfg)[CONTACT.name])
            audited.setdefault(oid, {})[key] = {"old": held, "new": restore}
            contact_ids.setdefault(oid, {})[_position_of(key)] = contact
            result["restore"].append(key)
    log.info(
        "Rollback %s: %d other-contact value(s) to restore on HubSpot contacts%s; the opportunities "
        "follow at the next reconcile",
        f"of run {sync_run_id}" if sync_run_id else f"of {opportunity_id} to {about['targetTimestamp']}",
        sum(len(r["restore"]) for r in out.values()),
        " (DRY RUN: nothing written)" if call.dry_run else "",
    )
    if call.dry_run or not writes:
        return out
    error: SyncError | None = None
    try:
        outcome = gw.batch_update(CONTACT.plural, writes)
        ok = not outcome.errors
        if not ok:
            log.error("Rollback: HubSpot refused %d other-contact update(s)", len(outcome.errors))
    except SyncError as err:
        # Audited as failed (HubSpot may have applied it: a re-run finds the value and skips it), then raised.
        ok, error = False, err
    entries = [
        AuditEntry(
            opportunity_id=oid,
            deal_id=None,
            run_id=call.run_id.replace("#", "_"),
            run_timestamp=call.run_timestamp,
            direction=Direction.TO_HUBSPOT,
            action="ROLLBACK_CONTACT",
            source="PARTNER_CENTRAL",
            user=call.user,
            changes=changes,
            success=ok,
            error=error.to_dict() if error else None,
            api_calls=["crm.objects.batch.update"],
            metadata={
                "runId": call.run_id,
                "dagId": call.dag_id,
                **about,
                # Where each value went, as UPDATE_CONTACT names it: a later rollback can follow this one.
                "contactIds": contact_ids.get(oid) or {},
            },
        )
        for oid, changes in audited.items()
    ]
    env.audit.write(entries)
    if error is not None:
        raise error
    return out
