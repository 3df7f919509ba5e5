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

``CUSTOM_VALUE`` (with ``custom_value``) writes a value the person typed to *both* systems, under the same
rules (Partner Central first, then HubSpot), moves the baseline to it and audits it as ``CONFLICT_RESOLVED``
once per system. Every conflict type (``conflict_type``: simultaneous update, stale data, locked field,
rejected value) is resolved the same way; a locked field or a rejected value can usually only be settled
with Partner Central's value or a custom one.

Both writes go through the one writer per system (:mod:`cosell_sync.writers`), as reconcile's do.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cosell_sync.common import AuditAction, Direction, Side
from cosell_sync.errors import ConflictError, NotFoundError, ParamError, WriteBlockedError

if TYPE_CHECKING:
    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

USE_HUBSPOT_VALUE = "USE_HUBSPOT_VALUE"
USE_PARTNER_CENTRAL_VALUE = "USE_PARTNER_CENTRAL_VALUE"
CUSTOM_VALUE = "CUSTOM_VALUE"
RESOLUTIONS = (USE_HUBSPOT_VALUE, USE_PARTNER_CENTRAL_VALUE, CUSTOM_VALUE)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class ResolutionBlockedError(WriteBlockedError):
    """The chosen value cannot be written now (review state, direction): the conflict stays pending."""


class AlreadyResolvedError(ConflictError):
    """The conflict was already resolved the other way: resolving it again is refused, whatever the retry."""


def close_in_hubspot(gw: Any, task_ids: Iterable[Any], resolved_deal_ids: Iterable[Any]) -> None:
    """Close resolved conflicts in HubSpot: their tasks completed, ``aws_conflict_status`` Resolved.

    Shared by a person's decision (:func:`resolve_conflict`) and a rejected value that Partner Central
    later took (``apply._close_superseded``): one batch call for the tasks, one for the deals.

    Args:
        gw: the HubSpot gateway.
        task_ids: the conflicts' task ids (None where a conflict has no task).
        resolved_deal_ids: deals with nothing else pending (None entries are skipped).
    """
    tasks = {str(t): {"hs_task_status": "COMPLETED"} for t in task_ids if t}
    if tasks:
        gw.batch_update("tasks", tasks)
    deals = {str(d): {"aws_conflict_status": "Resolved"} for d in resolved_deal_ids if d}
    if deals:
        gw.batch_update("deals", deals)


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
    custom_value: str | None = None,
) -> dict[str, Any]:
    """Apply a person's decision on a manual conflict (see the module docstring for the steps).

    Args:
        env: clients and stores.
        conflict_id: the conflict (from the HubSpot task).
        resolution: ``USE_HUBSPOT_VALUE``, ``USE_PARTNER_CENTRAL_VALUE`` or ``CUSTOM_VALUE``.
        reason: why (free text; email addresses are removed before it reaches the audit trail).
        user: who decided: a user id (e.g. a HubSpot owner id), never an email address.
        run_id: the Airflow run id (audit and baseline version).
        run_timestamp: the run's timestamp for the audit key (default: now); fixed per run so a
            retried task overwrites its own entry.
        dag_id: the DAG, for the audit metadata.
        custom_value: the value (canonical form, as the task shows values) written to both systems;
            required with ``CUSTOM_VALUE``, refused with the other resolutions.

    Returns:
        A small summary: ``status`` (``resolved`` | ``already_resolved``), the field, the written side
        and the API calls.

    Raises:
        ParamError: an unknown resolution, ``CUSTOM_VALUE`` without ``custom_value`` (or a custom value
            with another resolution), or ``user`` is empty or an email address (a ValueError too).
        NotFoundError: no such conflict.
        AlreadyResolvedError: the conflict was already resolved the other way (a ConflictError).
        ResolutionBlockedError: the value cannot be written now; the conflict stays pending.
    """
    import pandas as pd

    from cosell_sync.audit import AuditEntry
    from cosell_sync.conflict_store import RESOLVED
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.writers import HubSpotWriter, PartnerCentralWriter

    if resolution not in RESOLUTIONS:
        raise ParamError(f"unknown resolution {resolution!r}; expected one of {', '.join(RESOLUTIONS)}")
    custom = custom_value if custom_value not in (None, "") else None
    if resolution == CUSTOM_VALUE and custom is None:
        raise ParamError(
            "resolution CUSTOM_VALUE needs the custom_value param: the value to write to both HubSpot and "
            "Partner Central (as the task shows values, e.g. 2027-06-30 for a date, 424242 for an amount)"
        )
    if resolution != CUSTOM_VALUE and custom is not None:
        raise ParamError(f"custom_value is only used with resolution CUSTOM_VALUE, not with {resolution}")
    if not user or not user.strip() or _EMAIL.search(user):
        raise ParamError("resolved_by must be a user id (e.g. a HubSpot owner id), not an email address")
    cfg = env.config
    calls: Counter[str] = Counter()
    conflict = env.conflicts.get(conflict_id)
    oid, name = str(conflict["opportunity_id"]), str(conflict["field"])
    if conflict.get("status") == RESOLVED:
        same_value = resolution != CUSTOM_VALUE or conflict.get("resolved_value") == custom
        if conflict.get("resolution") == resolution and same_value:
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
        raise AlreadyResolvedError(
            f"conflict {conflict_id} ({oid}.{name}) was already resolved with {conflict.get('resolution')} "
            f"by {conflict.get('resolved_by')}; it cannot be resolved again with {resolution}"
            + (" and another value" if conflict.get("resolution") == resolution else ""),
            record_id=conflict_id,
        )

    pc_value, hs_value = recorded_values(conflict)
    if resolution == CUSTOM_VALUE:
        return _resolve_custom(
            env, conflict, str(custom), reason, user, run_id, when=run_timestamp, dag_id=dag_id
        )
    use_hubspot = resolution == USE_HUBSPOT_VALUE
    winning, losing = (hs_value, pc_value) if use_hubspot else (pc_value, hs_value)
    target_side = Side.PARTNER_CENTRAL if use_hubspot else Side.HUBSPOT
    base_row = env.baseline.get(oid)
    baseline_update: dict[str, Any] = {name: winning}
    log.info(
        "Resolving conflict %s on %s.%s with %s: writing the %s value to %s",
        conflict_id,
        oid,
        name,
        resolution,
        Side.HUBSPOT if use_hubspot else Side.PARTNER_CENTRAL,
        target_side,
    )

    gw = HubSpotGateway(env.hubspot)
    hubspot = HubSpotWriter(cfg, gw)
    if use_hubspot:
        pc_writer = PartnerCentralWriter(cfg, env.partner_central, env.catalog, calls)
        written = pc_writer.update(oid, {name: winning})
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
        if cfg.field(name).direction == Direction.TO_PARTNER_CENTRAL:
            raise ResolutionBlockedError(
                f"conflict {conflict_id}: {name} is never written to HubSpot (direction "
                "hubspot_to_partner_central); only USE_HUBSPOT_VALUE can resolve it. "
                "The conflict stays PENDING.",
                record_id=conflict_id,
            )
        ids = hubspot.object_ids(conflict.get("deal_id"), base_row)
        hubspot.write_record(oid, {name: winning}, ids)

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
                direction=Direction.TO_PARTNER_CENTRAL if use_hubspot else Direction.TO_HUBSPOT,
                action=AuditAction.CONFLICT_RESOLVED,
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
    close_in_hubspot(gw, [conflict.get("task_id")], [] if others else [deal_id])

    # Last: resolving is the commit point (the field stays frozen until now, so a retry redoes the above).
    env.conflicts.resolve(conflict_id, resolution, reason or "", user)
    api_calls = {**dict(calls), **dict(gw.calls)}
    log.info(
        "Conflict %s resolved: %s.%s now holds the %s value on both sides; other pending conflicts on "
        "%s: %d; API calls: %s",
        conflict_id,
        oid,
        name,
        Side.HUBSPOT if use_hubspot else Side.PARTNER_CENTRAL,
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
        "conflict_type": conflict.get("conflict_type"),
        "written_to": target_side,
        "other_pending": len(others),
        "api_calls": api_calls,
    }


def _resolve_custom(
    env: SyncEnv,
    conflict: dict[str, Any],
    value: str,
    reason: str | None,
    user: str,
    run_id: str,
    *,
    when: datetime | None,
    dag_id: str,
) -> dict[str, Any]:
    """``CUSTOM_VALUE``: write a person's value to Partner Central, then HubSpot; baseline, audit, close.

    Partner Central goes first: it is the side that may refuse (review state, validation), and a
    refusal then leaves both systems untouched and the conflict pending. A retry after a HubSpot
    failure finds Partner Central already holding the value and sends nothing there again.
    """
    import pandas as pd

    from cosell_sync.audit import AuditEntry
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.writers import HubSpotWriter, PartnerCentralWriter

    cfg = env.config
    conflict_id = str(conflict["conflict_id"])
    oid, name = str(conflict["opportunity_id"]), str(conflict["field"])
    pc_value, hs_value = recorded_values(conflict)
    direction = cfg.field(name).direction
    if direction != Direction.BOTH:
        only = (
            "Partner Central -> HubSpot"
            if direction == Direction.TO_HUBSPOT
            else "HubSpot -> Partner Central"
        )
        raise ResolutionBlockedError(
            f"conflict {conflict_id}: {name} is mapped {only} only, so a custom value cannot be written to "
            "both systems; resolve it with the value of the side it comes from. The conflict stays PENDING.",
            record_id=conflict_id,
        )
    calls: Counter[str] = Counter()
    log.info(
        "Resolving conflict %s on %s.%s with a custom value: writing it to both systems",
        conflict_id,
        oid,
        name,
    )
    written = PartnerCentralWriter(cfg, env.partner_central, env.catalog, calls).update(oid, {name: value})
    if written.gated:
        reason_code = written.gated[name]
        raise ResolutionBlockedError(
            f"conflict {conflict_id}: cannot write {name} ({cfg.field(name).partner_central}) to "
            f"opportunity {oid} now: its ReviewStatus is {written.review_status!r} ({reason_code}). "
            f"{_blocked_hint(reason_code)} Nothing was written; the conflict stays PENDING.",
            service="partner_central",
            code=reason_code,
            record_id=conflict_id,
        )
    gw = HubSpotGateway(env.hubspot)
    hubspot = HubSpotWriter(cfg, gw)
    base_row = env.baseline.get(oid)
    hubspot.write_record(oid, {name: value}, hubspot.object_ids(conflict.get("deal_id"), base_row))

    # Both systems hold the custom value: it is the field's new common ancestor.
    update = {name: value, "pc_last_modified": written.last_modified}
    env.baseline.commit(
        pd.DataFrame([update], index=pd.Index([oid], name="opportunity_id"), dtype=object), run_id
    )

    deal_id = conflict.get("deal_id") or (base_row or {}).get("deal_id")
    metadata: dict[str, Any] = {
        "runId": run_id,
        "dagId": dag_id,
        "conflictId": conflict_id,
        "conflictType": conflict.get("conflict_type"),
        "resolution": CUSTOM_VALUE,
    }
    if reason:
        metadata["reason"] = no_email(reason)
    stamp = when or datetime.now(UTC)
    # One entry per system written (its old value differs per side); the audit key is per direction.
    env.audit.write(
        [
            AuditEntry(
                opportunity_id=oid,
                deal_id=str(deal_id) if deal_id else None,
                run_id=run_id.replace("#", "_"),
                run_timestamp=stamp,
                direction=target,
                action=AuditAction.CONFLICT_RESOLVED,
                source="HUBSPOT",  # the person decided from the HubSpot task
                user=user,
                changes={name: {"old": old, "new": value}},
                api_calls=api,
                metadata=metadata,
            )
            for target, old, api in (
                (Direction.TO_PARTNER_CENTRAL, pc_value, sorted(calls)),
                (Direction.TO_HUBSPOT, hs_value, sorted(gw.calls)),
            )
        ]
    )
    others = [c for c in env.conflicts.pending(oid) if c.get("conflict_id") != conflict_id]
    close_in_hubspot(gw, [conflict.get("task_id")], [] if others else [deal_id])
    env.conflicts.resolve(conflict_id, CUSTOM_VALUE, reason or "", user, custom_value=value)
    api_calls = {**dict(calls), **dict(gw.calls)}
    log.info(
        "Conflict %s resolved: %s.%s now holds the custom value on both sides; other pending conflicts on "
        "%s: %d; API calls: %s",
        conflict_id,
        oid,
        name,
        oid,
        len(others),
        api_calls,
    )
    return {
        "status": "resolved",
        "conflict_id": conflict_id,
        "opportunity_id": oid,
        "field": name,
        "resolution": CUSTOM_VALUE,
        "conflict_type": conflict.get("conflict_type"),
        "written_to": "both",
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
    "CUSTOM_VALUE",
    "RESOLUTIONS",
    "USE_HUBSPOT_VALUE",
    "USE_PARTNER_CENTRAL_VALUE",
    "ResolutionBlockedError",
    "no_email",
    "recorded_values",
    "resolve_conflict",
]
