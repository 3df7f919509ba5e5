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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cosell_sync.conflicts import HUBSPOT, MANUAL, PARTNER_CENTRAL, conflict_id
from cosell_sync.gating import BLOCKED_REASONS, LOCKED, UnknownReviewStatusError, gate_reason
from cosell_sync.pc_model import strip_indexes

if TYPE_CHECKING:
    from cosell_sync.config import SyncConfig

__all__ = ["UNKNOWN_REVIEW_STATUS", "Plan", "build_plan"]

#: Deferred reason for an opportunity whose ReviewStatus is not a PC enum value (retried later).
UNKNOWN_REVIEW_STATUS = "UNKNOWN_REVIEW_STATUS"


@dataclass
class Plan:
    """Everything one reconcile run will do, keyed by opportunity id.

    Attributes:
        hubspot_updates: opportunity id -> field -> canonical value to write to HubSpot.
        partner_central_updates: opportunity id -> field -> canonical value to write to PC (gated).
        conflicts: manual conflicts: ``opportunity_id``, ``field``, ``pc``, ``hs``, ``conflict_id``.
        deferred: ``opportunity_id``, ``field``, ``reason``, ``value``: retried on a later run.
        blocked: ``opportunity_id``, ``field``, ``reason``, ``value``: never sent to PC.
        converged: opportunity ids with fields both sides changed to the same value.
        converged_values: opportunity id -> field -> the agreed value (for the baseline).
    """

    hubspot_updates: dict[str, dict[str, str | None]] = field(default_factory=dict)
    partner_central_updates: dict[str, dict[str, str | None]] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    deferred: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    converged: list[str] = field(default_factory=list)
    converged_values: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        """Counts for the task log and the run summary (no values: they may be PII)."""
        return {
            "hubspot_records": len(self.hubspot_updates),
            "hubspot_fields": sum(len(v) for v in self.hubspot_updates.values()),
            "partner_central_records": len(self.partner_central_updates),
            "partner_central_fields": sum(len(v) for v in self.partner_central_updates.values()),
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
    plan.hubspot_updates = _nest(oids[push_back], fields[push_back], hs_value[push_back])
    plan.deferred = _records(oids[deferred], fields[deferred], reason[deferred], value[deferred])
    plan.blocked = _records(oids[blocked], fields[blocked], reason[blocked], value[blocked])

    manual = winner == MANUAL
    hs_values = diff_resolved["hs"].to_numpy(dtype=object)
    plan.conflicts = [
        {
            "opportunity_id": oid,
            "field": name,
            "pc": pcv,
            "hs": hsv,
            "conflict_id": conflict_id(oid, name, pcv, hsv),
        }
        for oid, name, pcv, hsv in zip(
            oids[manual], fields[manual], pc_values[manual], hs_values[manual], strict=True
        )
    ]

    converged = kind == "converged"
    plan.converged_values = _nest(oids[converged], fields[converged], pc_values[converged])
    plan.converged = list(plan.converged_values)
    return plan
