"""Keyed three-way diff of canonical field values: baseline vs Partner Central vs HubSpot.

The baseline is what both systems last agreed on. For each (opportunity, field) a side has
*changed* when its value differs from the baseline; the field then needs action:

=====================  ===================================================================
pc changed only        ``to_hubspot``
hs changed only        ``to_partner_central``
both, different        ``conflict`` (resolved in :mod:`cosell_sync.conflicts`)
both, same value       ``converged`` (nothing to write; the baseline advances)
=====================  ===================================================================

A record absent from a side's frame was not read this run (nothing changed there since the
watermark), so its value on that side *is* the baseline: a run with no changes reads and
compares nothing per record. A field listed in a record's ``_skip_fields`` (conversion error,
missing association) is treated the same way, so an unreadable value never overwrites the other
side. A new link has no baseline row: a side with a value counts as changed, so a value present on
one side fills the other, and two different values are a conflict.

Direction is respected: a ``partner_central_to_hubspot`` field pushes the PC value whenever the
two differ (HubSpot edits are overwritten); ``hubspot_to_partner_central`` the reverse.

Everything is vectorised per field column (Arrow compute kernels, so string columns read back
from Parquet compare without conversion to Python objects); there is no per-record Python loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pac

from cosell_sync.mapping import SKIP_COLUMN

if TYPE_CHECKING:
    from cosell_sync.config import SyncConfig

__all__ = ["DIFF_COLUMNS", "KINDS", "three_way_diff"]

#: Row kinds, by code (0 = no action).
KINDS = np.array([None, "to_hubspot", "to_partner_central", "conflict", "converged"], dtype=object)
_TO_HS, _TO_PC, _CONFLICT, _CONVERGED = 1, 2, 3, 4

DIFF_COLUMNS = [
    "opportunity_id",
    "field",
    "base",
    "pc",
    "hs",
    "pc_changed",
    "hs_changed",
    "kind",
    "_pc_last_modified",
    "_hs_last_modified",
]


def _dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per id; the last occurrence is the freshest read."""
    return frame[~frame.index.duplicated(keep="last")] if frame.index.has_duplicates else frame


def _arrow_column(frame: pd.DataFrame, name: str) -> pa.Array:
    """A canonical column as an Arrow string array (nulls for None/NaN/NA)."""
    if name not in frame.columns:
        return pa.nulls(len(frame), pa.string())
    series = frame[name]
    try:
        array = pa.array(series, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A baseline read back from storage may hold non-strings (numbers); canonical values are strings.
        array = pa.array([None if pd.isna(v) else str(v) for v in series], type=pa.string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array


def _aligned(array: pa.Array, positions: pa.Array) -> pa.Array:
    """``array`` reordered to the diff's ids; ids absent from the frame become null."""
    return array.take(positions)


def _same(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Null-safe equality as a numpy bool array (None == None)."""
    equal = pac.fill_null(pac.equal(a, b), False)
    both_null = pac.and_(pac.is_null(a), pac.is_null(b))
    return pac.or_(equal, both_null).to_numpy(zero_copy_only=False)


def _skip_mask(frame: pd.DataFrame, positions: np.ndarray, fields: list[str]) -> np.ndarray:
    """(ids x fields) bool: values this side could not read (listed in ``_skip_fields``)."""
    mask = np.zeros((len(positions), len(fields)), dtype=bool)
    if SKIP_COLUMN not in frame.columns or len(frame) == 0:
        return mask
    flags = frame[SKIP_COLUMN].to_numpy(dtype=object)
    flagged = np.flatnonzero(~pd.isna(flags))
    if len(flagged) == 0:
        return mask
    column_of = {name: j for j, name in enumerate(fields)}
    row_of = np.full(len(frame), -1)
    present = positions >= 0
    row_of[positions[present]] = np.flatnonzero(present)
    # Only records with conversion problems get here; they are few, so a loop over them is fine.
    for frame_row in flagged:
        row = row_of[frame_row]
        if row < 0:
            continue
        for name in str(flags[frame_row]).split(","):
            j = column_of.get(name)
            if j is not None:
                mask[row, j] = True
    return mask


def _timestamps(frame: pd.DataFrame, ids: pd.Index) -> pd.DatetimeIndex:
    if "_last_modified" not in frame.columns:
        return pd.DatetimeIndex([pd.NaT] * len(ids), tz="UTC")
    stamps = pd.to_datetime(frame["_last_modified"], utc=True).reindex(ids)
    return pd.DatetimeIndex(stamps)


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in DIFF_COLUMNS})
    for col in ("pc_changed", "hs_changed"):
        frame[col] = frame[col].astype(bool)
    for col in ("_pc_last_modified", "_hs_last_modified"):
        frame[col] = pd.Series([], dtype="datetime64[ns, UTC]")
    return frame


def three_way_diff(base: pd.DataFrame, pc: pd.DataFrame, hs: pd.DataFrame, cfg: SyncConfig) -> pd.DataFrame:
    """The fields that need action, one row per (opportunity, field).

    Args:
        base: the baseline, indexed by opportunity id, one column per field name (canonical).
        pc: opportunities read this run (:func:`~cosell_sync.mapping.opportunities_to_frame`).
        hs: linked deals read this run (:func:`~cosell_sync.mapping.hubspot_to_frame`).
        cfg: the sync configuration (field names and directions).

    Returns:
        A long frame with columns :data:`DIFF_COLUMNS`: ``base``/``pc``/``hs`` are the canonical
        values (``pc``/``hs`` after substituting the baseline for unread records and fields),
        ``pc_changed``/``hs_changed`` whether each side moved off the baseline, ``kind`` one of
        ``to_hubspot``, ``to_partner_central``, ``conflict``, ``converged``, and the record
        timestamps ``_pc_last_modified``/``_hs_last_modified`` (UTC, NaT if that side was not read)
        for last-write-wins. Records read on neither side do not appear.
    """
    fields = cfg.field_names()
    ids = pc.index.append(hs.index).unique()
    if len(ids) == 0 or not fields:
        return _empty()
    ids = pd.Index(ids, dtype=object, name="opportunity_id")

    base_frame, pc_frame, hs_frame = _dedupe(base), _dedupe(pc), _dedupe(hs)
    base_pos = base_frame.index.get_indexer(ids)
    pc_pos = pc_frame.index.get_indexer(ids)
    hs_pos = hs_frame.index.get_indexer(ids)
    # Unread on a side == unchanged on that side: its value is the baseline.
    pc_unknown = (pc_pos < 0)[:, None] | _skip_mask(pc_frame, pc_pos, fields)
    hs_unknown = (hs_pos < 0)[:, None] | _skip_mask(hs_frame, hs_pos, fields)
    base_take = pa.array(base_pos, mask=base_pos < 0)
    pc_take = pa.array(pc_pos, mask=pc_pos < 0)
    hs_take = pa.array(hs_pos, mask=hs_pos < 0)

    chunks: list[tuple[Any, ...]] = []
    for j, field in enumerate(cfg.fields):
        name = field.name
        b = _aligned(_arrow_column(base_frame, name), base_take)
        p = _aligned(_arrow_column(pc_frame, name), pc_take)
        h = _aligned(_arrow_column(hs_frame, name), hs_take)
        if pc_unknown[:, j].any():
            p = pac.if_else(pa.array(pc_unknown[:, j]), b, p)
        if hs_unknown[:, j].any():
            h = pac.if_else(pa.array(hs_unknown[:, j]), b, h)
        pc_changed = ~_same(p, b)
        hs_changed = ~_same(h, b)
        differ = ~_same(p, h)

        code = np.zeros(len(ids), dtype=np.int8)
        code[~differ & pc_changed] = _CONVERGED  # equal, off the baseline: both moved to the same value
        if field.direction == "both":
            code[differ & pc_changed & ~hs_changed] = _TO_HS
            code[differ & hs_changed & ~pc_changed] = _TO_PC
            code[differ & pc_changed & hs_changed] = _CONFLICT
        elif field.direction == "partner_central_to_hubspot":
            code[differ] = _TO_HS  # PC owns the field: its value is pushed whenever the two differ
        else:
            code[differ] = _TO_PC
        rows = np.flatnonzero(code)
        if len(rows) == 0:
            continue
        take = pa.array(rows)
        chunks.append(
            (
                rows,
                np.full(len(rows), j),
                code[rows],
                b.take(take).to_numpy(zero_copy_only=False),
                p.take(take).to_numpy(zero_copy_only=False),
                h.take(take).to_numpy(zero_copy_only=False),
                pc_changed[rows],
                hs_changed[rows],
            )
        )
    if not chunks:
        return _empty()
    rows, cols, codes, b_vals, p_vals, h_vals, pc_chg, hs_chg = (
        np.concatenate(part) for part in zip(*chunks, strict=True)
    )
    order = np.lexsort((cols, rows))  # grouped by record, fields in mapping order
    rows = rows[order]
    field_arr = np.array(fields, dtype=object)
    pc_ts = _timestamps(pc_frame, ids)
    hs_ts = _timestamps(hs_frame, ids)

    def obj(values: np.ndarray) -> pd.Series:
        # Explicit object dtype: pandas 3 would infer its "str" dtype and turn None into NaN.
        return pd.Series(values, dtype=object)

    out = pd.DataFrame(
        {
            "opportunity_id": obj(ids.to_numpy(dtype=object)[rows]),
            "field": obj(field_arr[cols[order]]),
            "base": obj(b_vals[order]),
            "pc": obj(p_vals[order]),
            "hs": obj(h_vals[order]),
            "pc_changed": pc_chg[order],
            "hs_changed": hs_chg[order],
            "kind": obj(KINDS[codes[order]]),
            "_pc_last_modified": pc_ts.take(rows),
            "_hs_last_modified": hs_ts.take(rows),
        }
    )
    return out
