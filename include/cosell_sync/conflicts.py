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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from cosell_sync.config import SyncConfig

__all__ = ["conflict_id", "resolve"]

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
