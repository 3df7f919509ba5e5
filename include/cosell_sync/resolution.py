"""Resolving a manual conflict: write the chosen value to the other system, then close the conflict.

A field listed under ``conflicts.manual_resolution`` that changed differently on both sides is frozen by
``cosell_reconcile`` (a pending item in the ``ConflictStore``, a HubSpot task for the deal owner, the deal's
``aws_conflict_status`` set to ``Pending``). :func:`resolve_conflict` is what a person's decision runs:

1. read the conflict; one already resolved with the same resolution is reported and nothing is written
   (a different resolution is refused);
2. take the value *recorded in the conflict* for the winning side (not that side's current value: the
   person decided on what the task showed them) and write it to the other system: Partner Central with
   GetOpportunity -> merge -> UpdateOpportunity under the optimistic lock and the review-state rules,
   HubSpot with a batch update of the deal, company or contact the field lives on;
3. move the baseline of that field to the resolved value, audit ``CONFLICT_RESOLVED``, complete the
   HubSpot task and set ``aws_conflict_status`` to ``Resolved`` when nothing else is pending on the deal;
4. last, mark the conflict ``RESOLVED``. The conflict is the commit point: until it is resolved the field
   stays frozen, every step above is idempotent, and a failed or retried task simply does them again.

The Partner Central and HubSpot write helpers here are shared with :mod:`cosell_sync.rollback`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cosell_sync.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.reconcile import SyncEnv

log = logging.getLogger(__name__)

USE_HUBSPOT_VALUE = "USE_HUBSPOT_VALUE"
USE_PARTNER_CENTRAL_VALUE = "USE_PARTNER_CENTRAL_VALUE"
RESOLUTIONS = (USE_HUBSPOT_VALUE, USE_PARTNER_CENTRAL_VALUE)
#: HubSpot object type -> (plural used by the API, baseline column holding its id).
HUBSPOT_OBJECTS = {
    "deal": ("deals", "deal_id"),
    "company": ("companies", "company_id"),
    "contact": ("contacts", "contact_id"),
}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class ResolutionBlockedError(ValidationError):
    """The chosen value cannot be written now (review state, direction): the conflict stays pending."""


# ---------------------------------------------------------------------------------------------------
# shared writers (also used by cosell_sync.rollback)
# ---------------------------------------------------------------------------------------------------
@dataclass
class PartnerCentralWrite:
    """Outcome of :func:`write_partner_central`.

    Attributes:
        written: field -> value sent in an UpdateOpportunity.
        gated: field -> reason code the review state gave for not writing it.
        already_applied: the record already held every allowed value (nothing sent).
        last_modified: the record's ``LastModifiedDate`` after the write (or as read).
        review_status: the ``ReviewStatus`` the decision was made on.
        attempts: UpdateOpportunity attempts (more than one after ``ConflictException``).
    """

    written: dict[str, str | None] = field(default_factory=dict)
    gated: dict[str, str] = field(default_factory=dict)
    already_applied: bool = False
    last_modified: str | None = None
    review_status: str | None = None
    attempts: int = 0


def get_opportunity(env: SyncEnv, opportunity_id: str, calls: Counter[str]) -> dict[str, Any]:
    """``GetOpportunity`` without the response metadata.

    Args:
        env: clients and stores.
        opportunity_id: the opportunity.
        calls: API call counter to update.

    Returns:
        The opportunity as Partner Central returns it.
    """
    calls["GetOpportunity"] += 1
    opp = env.partner_central.call("get_opportunity", Identifier=opportunity_id)
    opp.pop("ResponseMetadata", None)
    return opp


def gate_fields(env: SyncEnv, review_status: str | None, names: list[str]) -> dict[str, str]:
    """The fields the review state (or the field's direction) forbids writing to Partner Central now.

    Args:
        env: clients and stores (for the config).
        review_status: the opportunity's ``LifeCycle.ReviewStatus``.
        names: mapping field names.

    Returns:
        Field -> reason code, only for the fields that may not be written.
    """
    from cosell_sync.gating import UnknownReviewStatusError, gate
    from cosell_sync.plan import UNKNOWN_REVIEW_STATUS

    cfg = env.config
    out: dict[str, str] = {}
    paths: dict[str, str] = {}
    for name in names:
        if cfg.field(name).direction == "partner_central_to_hubspot":
            out[name] = "READ_ONLY_IN_PARTNER_CENTRAL"
        else:
            paths[name] = cfg.field(name).partner_central
    if not paths:
        return out
    try:
        decision = gate(review_status, paths.values())
    except UnknownReviewStatusError:
        return {**out, **dict.fromkeys(paths, UNKNOWN_REVIEW_STATUS)}
    for name, path in paths.items():
        reason = decision.deferred.get(path) or decision.blocked.get(path)
        if reason:
            out[name] = reason
    return out


def write_partner_central(
    env: SyncEnv,
    opportunity_id: str,
    changes: dict[str, str | None],
    calls: Counter[str],
    current: dict[str, Any] | None = None,
) -> PartnerCentralWrite:
    """Write canonical field values to an opportunity: Get -> gate -> merge -> Update, with the lock.

    UpdateOpportunity replaces the whole record, so the change is merged into a fresh read and sent with
    the ``LastModifiedDate`` just read; on ``ConflictException`` the record is read, gated and merged
    again, up to ``conflict_retries`` times. Fields the review state forbids are not sent (they come back
    in ``gated``); a payload the record already matches is not sent at all, so a retry re-sends nothing.

    Args:
        env: clients and stores.
        opportunity_id: the opportunity.
        changes: field -> canonical value.
        calls: API call counter to update.
        current: a fresh GetOpportunity response to start from (saves a read).

    Returns:
        What was written and what was gated.

    Raises:
        ConflictError: still conflicting after ``conflict_retries`` re-reads.
        SyncError: any other Partner Central failure.
    """
    from cosell_sync.mapping import merge_into_opportunity
    from cosell_sync.reconcile import _already_applied, ts_key

    cfg = env.config
    result = PartnerCentralWrite()
    for attempt in range(cfg.conflict_retries + 1):
        if current is None:
            current = get_opportunity(env, opportunity_id, calls)
        result.review_status = (current.get("LifeCycle") or {}).get("ReviewStatus")
        # Gated on the record we merge into, not on an older read: AWS may have moved the review since.
        result.gated = gate_fields(env, result.review_status, list(changes))
        allowed = {k: v for k, v in changes.items() if k not in result.gated}
        result.last_modified = ts_key(current.get("LastModifiedDate"))
        if not allowed:
            return result
        payload = merge_into_opportunity(current, allowed, cfg)
        if _already_applied(payload, current):
            result.already_applied = True
            return result
        try:
            calls["UpdateOpportunity"] += 1
            result.attempts = attempt + 1
            updated = env.partner_central.call("update_opportunity", **payload)
        except ConflictError as err:
            # Someone changed the record since we read it: re-read, re-gate, re-merge, try again.
            log.warning("ConflictException on %s (attempt %d): %s", opportunity_id, attempt + 1, err.message)
            current = None
            if attempt == cfg.conflict_retries:
                raise
            continue
        result.written = allowed
        result.last_modified = ts_key(updated.get("LastModifiedDate")) or result.last_modified
        return result
    return result  # pragma: no cover - the loop always returns or raises


def hubspot_object_ids(
    env: SyncEnv, gw: HubSpotGateway, deal_id: str | None, base_row: dict[str, Any] | None
) -> dict[str, str | None]:
    """The deal, company and contact a record's HubSpot fields live on.

    The baseline stores the ids (``deal_id``, ``company_id``, ``contact_id``); a company or contact the
    baseline lacks is looked up through the deal's associations (one call each, only when needed).

    Args:
        env: clients and stores.
        gw: the HubSpot gateway (calls are counted there).
        deal_id: the deal (from the conflict or the baseline).
        base_row: the record's baseline row, if any.

    Returns:
        ``{"deal": id, "company": id, "contact": id}``, None where there is no such object.
    """
    from cosell_sync.reconcile import _clean

    row = base_row or {}
    ids: dict[str, str | None] = {
        obj: _clean(row.get(column)) for obj, (_, column) in HUBSPOT_OBJECTS.items()
    }
    ids["deal"] = ids["deal"] or _clean(deal_id)
    if ids["deal"]:
        for obj in ("company", "contact"):
            if not ids[obj]:
                plural = HUBSPOT_OBJECTS[obj][0]
                found = gw.associations("deals", plural, [ids["deal"]]).get(ids["deal"]) or []
                ids[obj] = found[0] if found else None
    return ids


def write_hubspot(
    env: SyncEnv,
    gw: HubSpotGateway,
    opportunity_id: str,
    changes: dict[str, str | None],
    ids: dict[str, str | None],
) -> dict[str, str | None]:
    """Write canonical field values to the deal, company and contact they map to (one batch each).

    Args:
        env: clients and stores.
        gw: the HubSpot gateway.
        opportunity_id: the record (for messages).
        changes: field -> canonical value.
        ids: object type -> HubSpot id (see :func:`hubspot_object_ids`).

    Returns:
        The changes written.

    Raises:
        ResolutionBlockedError: a field's object does not exist or the field never writes HubSpot.
        ValidationError: HubSpot rejected the update (the message names the object and HubSpot's reason).
    """
    from cosell_sync.hubspot_api import error_ids
    from cosell_sync.mapping import changes_to_hubspot

    cfg = env.config
    for name in changes:
        if cfg.field(name).direction == "hubspot_to_partner_central":
            raise ResolutionBlockedError(
                f"{opportunity_id}.{name}: the field is mapped HubSpot -> Partner Central only; "
                "the sync never writes it to HubSpot",
                record_id=opportunity_id,
            )
    for obj, props in changes_to_hubspot(changes, cfg).items():
        plural = HUBSPOT_OBJECTS[obj][0]
        target = ids.get(obj)
        if not target:
            raise ResolutionBlockedError(
                f"{opportunity_id}: no HubSpot {obj} is associated with deal {ids.get('deal')}; "
                f"cannot write {', '.join(sorted(props))}",
                record_id=opportunity_id,
            )
        outcome = gw.batch_update(plural, {target: props})
        if outcome.errors:
            err = error_ids(outcome.errors).get(target) or outcome.errors[0]
            raise ValidationError(
                f"HubSpot rejected the update of {obj} {target} ({opportunity_id}): {err.get('message')}",
                service="hubspot",
                code=str(err.get("category") or "VALIDATION_ERROR"),
                record_id=opportunity_id,
            )
    return dict(changes)


def no_email(text: str | None) -> str | None:
    """Replace email addresses in free text (audit ``user``/``metadata`` must hold none).

    Args:
        text: free text, e.g. a person's reason.

    Returns:
        The text with every address replaced by ``[email removed]``.
    """
    return _EMAIL.sub("[email removed]", text) if text else text


# ---------------------------------------------------------------------------------------------------
# resolving one conflict
# ---------------------------------------------------------------------------------------------------
def recorded_values(conflict: dict[str, Any]) -> tuple[str | None, str | None]:
    """The Partner Central and HubSpot values the conflict recorded when it was detected.

    Args:
        conflict: the conflict item (``cosell_reconcile`` stores both values on it).

    Returns:
        ``(partner_central_value, hubspot_value)``.

    Raises:
        NotFoundError: neither value is recorded (a real conflict's sides differ, so both cannot be empty).
    """
    pcv, hsv = conflict.get("partner_central_value"), conflict.get("hubspot_value")
    if pcv is None and hsv is None:
        raise NotFoundError(
            f"conflict {conflict['conflict_id']} ({conflict['opportunity_id']}.{conflict['field']}) has no "
            "recorded values",
            record_id=conflict["conflict_id"],
        )
    return pcv, hsv


# ---------------------------------------------------------------------------------------------------
def resolve_conflict(
    env: SyncEnv,
    conflict_id: str,
    resolution: str,
    reason: str | None,
    user: str,
    run_id: str,
    *,
    run_timestamp: datetime | None = None,
    dag_id: str = "cosell_resolve_conflict",
) -> dict[str, Any]:
    """Apply a person's decision on a manual conflict (see the module docstring for the steps).

    Args:
        env: clients and stores.
        conflict_id: the conflict (from the HubSpot task).
        resolution: ``USE_HUBSPOT_VALUE`` or ``USE_PARTNER_CENTRAL_VALUE``.
        reason: why (free text; email addresses are removed before it reaches the audit trail).
        user: who decided: a user id (e.g. a HubSpot owner id), never an email address.
        run_id: the Airflow run id (audit and baseline version).
        run_timestamp: the run's timestamp for the audit key (default: now); fixed per run so a
            retried task overwrites its own entry.
        dag_id: the DAG, for the audit metadata.

    Returns:
        A small summary: ``status`` (``resolved`` | ``already_resolved``), the field, the written side
        and the API calls.

    Raises:
        ValueError: an unknown resolution, or ``user`` is empty or an email address.
        NotFoundError: no such conflict.
        ConflictError: the conflict was already resolved the other way.
        ResolutionBlockedError: the value cannot be written now; the conflict stays pending.
    """
    import pandas as pd

    from cosell_sync.audit import AuditEntry
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.reconcile import HS_SIDE, PC_SIDE, TO_HUBSPOT, TO_PARTNER_CENTRAL
    from cosell_sync.state import RESOLVED

    if resolution not in RESOLUTIONS:
        raise ValueError(f"unknown resolution {resolution!r}; expected one of {', '.join(RESOLUTIONS)}")
    if not user or not user.strip() or _EMAIL.search(user):
        raise ValueError(f"resolved_by must be a user id (e.g. a HubSpot owner id), not {user!r}")
    cfg = env.config
    calls: Counter[str] = Counter()
    conflict = env.conflicts.get(conflict_id)
    oid, name = str(conflict["opportunity_id"]), str(conflict["field"])
    if conflict.get("status") == RESOLVED:
        if conflict.get("resolution") == resolution:
            log.info(
                "Conflict %s (%s.%s) is already resolved with %s by %s at %s: nothing to do",
                conflict_id,
                oid,
                name,
                resolution,
                conflict.get("resolved_by"),
                conflict.get("resolved_at"),
            )
            return {"status": "already_resolved", "conflict_id": conflict_id, "field": name, "api_calls": {}}
        raise ConflictError(
            f"conflict {conflict_id} ({oid}.{name}) was already resolved with {conflict.get('resolution')} "
            f"by {conflict.get('resolved_by')}; it cannot be resolved again with {resolution}",
            record_id=conflict_id,
        )

    pc_value, hs_value = recorded_values(conflict)
    use_hubspot = resolution == USE_HUBSPOT_VALUE
    winning, losing = (hs_value, pc_value) if use_hubspot else (pc_value, hs_value)
    target_side = PC_SIDE if use_hubspot else HS_SIDE
    base_row = env.baseline.get(oid)
    baseline_update: dict[str, Any] = {name: winning}
    log.info(
        "Resolving conflict %s on %s.%s with %s: writing the %s value to %s",
        conflict_id,
        oid,
        name,
        resolution,
        HS_SIDE if use_hubspot else PC_SIDE,
        target_side,
    )

    gw = HubSpotGateway(env.hubspot)
    if use_hubspot:
        written = write_partner_central(env, oid, {name: winning}, calls)
        if written.gated:
            reason_code = written.gated[name]
            raise ResolutionBlockedError(
                f"conflict {conflict_id}: cannot write {name} ({cfg.field(name).partner_central}) to "
                f"opportunity {oid} now: its ReviewStatus is {written.review_status!r} ({reason_code}). "
                f"{_blocked_hint(reason_code)} The conflict stays PENDING.",
                service="partner_central",
                code=reason_code,
                record_id=conflict_id,
            )
        baseline_update["pc_last_modified"] = written.last_modified
        outcome = "already held the value" if written.already_applied else f"{written.attempts} attempt(s)"
        log.info("Partner Central %s updated: %s", oid, outcome)
    else:
        if cfg.field(name).direction == "hubspot_to_partner_central":
            raise ResolutionBlockedError(
                f"conflict {conflict_id}: {name} is never written to HubSpot (direction "
                "hubspot_to_partner_central); only USE_HUBSPOT_VALUE can resolve it. "
                "The conflict stays PENDING.",
                record_id=conflict_id,
            )
        ids = hubspot_object_ids(env, gw, conflict.get("deal_id"), base_row)
        write_hubspot(env, gw, oid, {name: winning}, ids)

    # Baseline: both systems now hold the winning value, so it is the field's new common ancestor.
    frame = pd.DataFrame([baseline_update], index=pd.Index([oid], name="opportunity_id"), dtype=object)
    env.baseline.commit(frame, run_id)

    deal_id = conflict.get("deal_id") or (base_row or {}).get("deal_id")
    when = run_timestamp or datetime.now(UTC)
    metadata: dict[str, Any] = {
        "runId": run_id,
        "dagId": dag_id,
        "conflictId": conflict_id,
        "resolution": resolution,
    }
    if reason:
        metadata["reason"] = no_email(reason)
    env.audit.write(
        [
            AuditEntry(
                opportunity_id=oid,
                deal_id=str(deal_id) if deal_id else None,
                run_id=run_id.replace("#", "_"),
                run_timestamp=when,
                direction=TO_PARTNER_CENTRAL if use_hubspot else TO_HUBSPOT,
                action="CONFLICT_RESOLVED",
                source="HUBSPOT" if use_hubspot else "PARTNER_CENTRAL",
                user=user,
                changes={name: {"old": losing, "new": winning}},
                api_calls=sorted(calls) + sorted(gw.calls),
                metadata=metadata,
            )
        ]
    )

    # The deal owner's task is done; the deal shows Resolved once nothing else is pending on it.
    others = [c for c in env.conflicts.pending(oid) if c.get("conflict_id") != conflict_id]
    if conflict.get("task_id"):
        gw.batch_update("tasks", {str(conflict["task_id"]): {"hs_task_status": "COMPLETED"}})
    if deal_id and not others:
        gw.batch_update("deals", {str(deal_id): {"aws_conflict_status": "Resolved"}})

    # Last: resolving is the commit point (the field stays frozen until now, so a retry redoes the above).
    env.conflicts.resolve(conflict_id, resolution, reason or "", user)
    api_calls = {**dict(calls), **dict(gw.calls)}
    log.info(
        "Conflict %s resolved: %s.%s now holds the %s value on both sides; other pending conflicts on "
        "%s: %d; API calls: %s",
        conflict_id,
        oid,
        name,
        HS_SIDE if use_hubspot else PC_SIDE,
        oid,
        len(others),
        api_calls,
    )
    return {
        "status": "resolved",
        "conflict_id": conflict_id,
        "opportunity_id": oid,
        "field": name,
        "resolution": resolution,
        "written_to": target_side,
        "other_pending": len(others),
        "api_calls": api_calls,
    }


def _blocked_hint(reason_code: str) -> str:
    hints = {
        "REVIEW_IN_PROGRESS": "AWS is reviewing the opportunity; run this again once the review is over.",
        "NOT_EDITABLE_IN_ACTION_REQUIRED": (
            "In 'Action Required' AWS accepts changes to a few fields only; run this again after the review."
        ),
        "LOCKED_AFTER_APPROVAL": (
            "AWS locks this field once the opportunity is approved; resolve with USE_PARTNER_CENTRAL_VALUE."
        ),
        "REJECTED_READ_ONLY": (
            "A rejected opportunity is read-only; resolve with USE_PARTNER_CENTRAL_VALUE."
        ),
        "READ_ONLY_IN_PARTNER_CENTRAL": (
            "The field is mapped Partner Central -> HubSpot only; resolve with USE_PARTNER_CENTRAL_VALUE."
        ),
    }
    return hints.get(reason_code, "Run this again once Partner Central accepts the change.")


__all__ = [
    "RESOLUTIONS",
    "USE_HUBSPOT_VALUE",
    "USE_PARTNER_CENTRAL_VALUE",
    "PartnerCentralWrite",
    "ResolutionBlockedError",
    "gate_fields",
    "get_opportunity",
    "hubspot_object_ids",
    "no_email",
    "recorded_values",
    "resolve_conflict",
    "write_hubspot",
    "write_partner_central",
]
