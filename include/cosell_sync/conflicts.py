"""Conflict resolution: who wins a field changed on both sides.

Strategies (design feature 5): ``last_write_wins`` (default), ``hubspot_wins``,
``partner_central_wins``, per field or by default, and *manual* for fields listed in
``conflicts.manual_resolution`` (a person decides through a HubSpot task).

Last-write-wins compares **record** timestamps: PC ``LastModifiedDate`` against the latest HubSpot
``hs_lastmodifieddate`` of the deal/company/contact; neither API gives per-field modification times
without extra history reads. A tie (or two unknown timestamps) goes to Partner Central: it is the
system of record AWS reviews, and a deterministic tie-break keeps re-runs stable.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cosell_sync.common import COMPANY, CONTACT

if TYPE_CHECKING:
    from cosell_sync.config import SyncConfig

__all__ = ["conflict_id", "resolve", "unify_shared"]

log = logging.getLogger(__name__)

PARTNER_CENTRAL = "partner_central"
HUBSPOT = "hubspot"
MANUAL = "manual"


def conflict_id(opportunity_id: str, field: str, pc_value: str | None, hs_value: str | None) -> str:
    """A deterministic id for a conflict, so a re-run never opens a second pending conflict or task.

    The same opportunity, field and pair of values always give the same id; a new value on either
    side is a new conflict.

    Args:
        opportunity_id: PC opportunity id.
        field: mapping name.
        pc_value: canonical PC value.
        hs_value: canonical HubSpot value.

    Returns:
        ``conf-`` followed by 24 hex characters.
    """
    payload = json.dumps([str(opportunity_id), field, pc_value, hs_value], ensure_ascii=False)
    return "conf-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


def resolve(diff: pd.DataFrame, cfg: SyncConfig) -> pd.DataFrame:
    """Decide the winner and the value of every diff row.

    Args:
        diff: the output of :func:`~cosell_sync.diff.three_way_diff`.
        cfg: the sync configuration (strategies).

    Returns:
        A copy of ``diff`` with ``strategy`` (conflict rows only), ``winner`` and ``value``:
        ``to_hubspot`` rows -> ``partner_central``; ``to_partner_central`` -> ``hubspot``;
        ``conflict`` rows by strategy (``manual`` rows have no value yet); ``converged`` rows have
        no winner and the agreed value.
    """
    out = diff.copy()
    n = len(out)
    if n == 0:
        for col in ("strategy", "winner", "value"):
            out[col] = pd.Series([], dtype=object)
        return out
    kind = out["kind"].to_numpy(dtype=object)
    is_conflict = kind == "conflict"

    strategies = {name: cfg.strategy_for(name) for name in cfg.field_names()}
    strategy = out["field"].map(strategies).to_numpy(dtype=object)
    strategy = np.where(is_conflict, strategy, None)

    pc_ts = pd.to_datetime(out["_pc_last_modified"], utc=True)
    hs_ts = pd.to_datetime(out["_hs_last_modified"], utc=True)
    # NaT compares False, so an unknown HubSpot time never beats PC; a known one beats an unknown PC time.
    hubspot_later = ((hs_ts > pc_ts) | (pc_ts.isna() & hs_ts.notna())).to_numpy()

    winner = np.select(
        [
            kind == "to_hubspot",
            kind == "to_partner_central",
            is_conflict & (strategy == MANUAL),
            is_conflict & (strategy == "partner_central_wins"),
            is_conflict & (strategy == "hubspot_wins"),
            is_conflict & (strategy == "last_write_wins") & hubspot_later,
            is_conflict & (strategy == "last_write_wins"),
        ],
        [PARTNER_CENTRAL, HUBSPOT, MANUAL, PARTNER_CENTRAL, HUBSPOT, HUBSPOT, PARTNER_CENTRAL],
        default=None,
    ).astype(object)
    winner[kind == "converged"] = None

    pc_values = out["pc"].to_numpy(dtype=object)
    hs_values = out["hs"].to_numpy(dtype=object)
    value = np.where(winner == HUBSPOT, hs_values, pc_values).astype(object)
    value[winner == MANUAL] = None

    # Explicit object dtype: pandas 3 would infer its "str" dtype and turn None into NaN.
    out["strategy"] = pd.Series(strategy, index=out.index, dtype=object)
    out["winner"] = pd.Series(winner, index=out.index, dtype=object)
    out["value"] = pd.Series(value, index=out.index, dtype=object)
    return out


def _with_conflict_type(resolved: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``resolved`` with an empty ``conflict_type`` column (set on rows made manual)."""
    out = resolved.copy()
    out["conflict_type"] = pd.Series(None, index=out.index, dtype=object)
    return out


def unify_shared(resolved: pd.DataFrame, related: dict[str, dict[str, str]], cfg: SyncConfig) -> pd.DataFrame:
    """One outcome per field of a company or contact shared by several opportunities.

    Each opportunity is diffed and resolved on its own, but a shared company has one HubSpot value per
    property. When one opportunity's row writes Partner Central's value to the company (its console edit
    won a conflict with HubSpot's edit, by the field's strategy), the rows of the company's other
    opportunities would still send HubSpot's losing value to Partner Central: the company and those
    opportunities would end up holding different values, the last write deciding silently. So within one
    object and field, when every row that writes HubSpot carries one value, the rows that write Partner
    Central take that value too (a row whose opportunity already holds it writes nothing). A group whose
    HubSpot-bound rows disagree (two opportunities edited to different values in the console) has no
    right answer: every row of it that would write becomes a manual conflict (``conflict_type``
    ``SHARED_RECORD``, a task on each deal, the field frozen until a person picks the value), never a
    silent last write. The log names the object, the field and the opportunities, never the values.

    Args:
        resolved: the output of :func:`resolve`.
        related: opportunity id -> object name (``company``, ``contact``) -> that object's HubSpot id.
        cfg: the sync configuration (which fields belong to which object).

    Returns:
        ``resolved`` itself when nothing is shared, else a copy with the rows of shared objects aligned;
        rows made manual by a disagreement carry ``conflict_type`` (elsewhere the column is None).
    """
    from cosell_sync.conflict_store import SHARED_RECORD

    objects = {f.name: f.object for f in cfg.fields if f.object in (COMPANY.name, CONTACT.name)}
    if resolved.empty or not objects:
        return resolved
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for idx, oid, name in zip(resolved.index, resolved["opportunity_id"], resolved["field"], strict=True):
        obj = objects.get(name)
        rid = (related.get(str(oid)) or {}).get(obj) if obj else None
        if rid:
            groups.setdefault((obj, str(rid), name), []).append(idx)
    out = None
    for (obj, rid, name), idx in groups.items():
        if len(idx) < 2:
            continue
        to_hubspot = {resolved.at[i, "value"] for i in idx if resolved.at[i, "winner"] == PARTNER_CENTRAL}
        if len(to_hubspot) > 1:
            writing = [i for i in idx if resolved.at[i, "winner"] in (PARTNER_CENTRAL, HUBSPOT)]
            log.warning(
                "%s %s: opportunities %s hold different values of %s in Partner Central; a person picks "
                "HubSpot's one value (SHARED_RECORD conflict, field frozen meanwhile)",
                obj,
                rid,
                ", ".join(sorted(str(resolved.at[i, "opportunity_id"]) for i in writing)),
                name,
            )
            out = out if out is not None else _with_conflict_type(resolved)
            for i in writing:
                out.at[i, "kind"] = "conflict"
                out.at[i, "strategy"] = MANUAL
                out.at[i, "winner"] = MANUAL
                out.at[i, "value"] = None
                out.at[i, "conflict_type"] = SHARED_RECORD
            continue
        losing = [i for i in idx if resolved.at[i, "winner"] == HUBSPOT]
        if not to_hubspot or not losing:
            continue
        (value,) = to_hubspot
        out = out if out is not None else _with_conflict_type(resolved)
        for i in losing:
            if out.at[i, "pc"] == value:
                out.at[i, "winner"] = None  # the opportunity already holds the winning value
            else:
                out.at[i, "value"] = value
    return resolved if out is None else out
