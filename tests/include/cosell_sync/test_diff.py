from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from cosell_sync.config import SyncConfig, load_config
from cosell_sync.diff import DIFF_COLUMNS, three_way_diff

BASE = {
    "project_title": "Migration",
    "stage": "Qualified",
    "expected_spend_amount": "1000",
    "review_status": "Pending Submission",
    "company_name": "Acme",
    "next_steps": "Call",
}


@pytest.fixture(scope="module")
def cfg() -> SyncConfig:
    return load_config()


def frame(
    cfg: SyncConfig, rows: dict[str, dict[str, Any]], modified: str | None = None, **extra: Any
) -> pd.DataFrame:
    """A canonical frame: every field column, rows given as overrides of BASE."""
    records = {
        oid: {name: values.get(name, BASE.get(name)) for name in cfg.field_names()}
        for oid, values in rows.items()
    }
    out = pd.DataFrame.from_dict(records, orient="index", dtype=object)
    out = out.reindex(columns=cfg.field_names())
    out.index = pd.Index(list(rows), dtype=object, name="opportunity_id")
    if modified is not None:
        out["_last_modified"] = pd.to_datetime([modified] * len(out), utc=True)
    for column, values in extra.items():
        out[column] = pd.Series(values, index=out.index, dtype=object)
    return out


def rows_of(diff: pd.DataFrame) -> set[tuple[str, str, str]]:
    return set(zip(diff["opportunity_id"], diff["field"], diff["kind"], strict=True))


@pytest.mark.parametrize(
    ("pc_rows", "hs_rows", "expected"),
    [
        pytest.param({"O1": {}}, {"O1": {}}, set(), id="nothing-changed"),
        pytest.param({}, {}, set(), id="nothing-read"),
        pytest.param(
            {"O1": {"project_title": "New"}},
            {"O1": {}},
            {("O1", "project_title", "to_hubspot")},
            id="pc-changed",
        ),
        pytest.param(
            {"O1": {}},
            {"O1": {"project_title": "New"}},
            {("O1", "project_title", "to_partner_central")},
            id="hs-changed",
        ),
        pytest.param(
            {"O1": {"project_title": "A"}},
            {"O1": {"project_title": "B"}},
            {("O1", "project_title", "conflict")},
            id="both-changed-differently",
        ),
        pytest.param(
            {"O1": {"project_title": "A"}},
            {"O1": {"project_title": "A"}},
            {("O1", "project_title", "converged")},
            id="both-changed-the-same",
        ),
        pytest.param(
            {"O1": {"project_title": "New"}},
            {},
            {("O1", "project_title", "to_hubspot")},
            id="hs-not-read-is-unchanged",
        ),
        pytest.param(
            {},
            {"O1": {"stage": "Committed"}},
            {("O1", "stage", "to_partner_central")},
            id="pc-not-read-is-unchanged",
        ),
        pytest.param(
            {"O1": {"next_steps": None}},
            {"O1": {}},
            {("O1", "next_steps", "to_hubspot")},
            id="pc-cleared-a-value",
        ),
        pytest.param(
            {"O1": {}},
            {"O1": {"review_status": "Approved"}},
            {("O1", "review_status", "to_hubspot")},
            id="pc-owned-field-hubspot-edit-is-overwritten",
        ),
        pytest.param(
            {"O1": {}, "O2": {"company_name": "Other"}},
            {"O3": {"stage": "Prospect"}},
            {("O2", "company_name", "to_hubspot"), ("O3", "stage", "to_partner_central")},
            id="several-records",
        ),
    ],
)
def test_three_way_diff(cfg, pc_rows, hs_rows, expected):
    base = frame(cfg, {"O1": {}, "O2": {}, "O3": {}, "O9": {}})
    diff = three_way_diff(base, frame(cfg, pc_rows), frame(cfg, hs_rows), cfg)
    assert list(diff.columns) == DIFF_COLUMNS
    assert rows_of(diff) == expected


def test_records_read_on_neither_side_are_ignored(cfg):
    base = frame(cfg, {"O1": {}, "O2": {"project_title": "stale"}})
    diff = three_way_diff(base, frame(cfg, {"O1": {"project_title": "New"}}), frame(cfg, {}), cfg)
    assert set(diff["opportunity_id"]) == {"O1"}


def test_row_carries_values_flags_and_timestamps(cfg):
    base = frame(cfg, {"O1": {}})
    pc = frame(cfg, {"O1": {"project_title": "A"}}, modified="2025-02-01T00:00:00Z")
    hs = frame(cfg, {"O1": {"project_title": "B"}}, modified="2025-02-02T00:00:00Z")
    row = three_way_diff(base, pc, hs, cfg).iloc[0].to_dict()
    assert row["base"] == "Migration"
    assert (row["pc"], row["hs"]) == ("A", "B")
    assert (row["pc_changed"], row["hs_changed"]) == (True, True)
    assert row["_pc_last_modified"] == pd.Timestamp("2025-02-01T00:00:00Z")
    assert row["_hs_last_modified"] == pd.Timestamp("2025-02-02T00:00:00Z")


@pytest.mark.parametrize(
    ("pc_title", "hs_title", "expected_kind"),
    [
        pytest.param("A", "B", "conflict", id="new-link-different-values"),
        pytest.param("A", "A", "converged", id="new-link-same-value"),
        pytest.param("A", None, "to_hubspot", id="new-link-pc-fills-empty-hubspot"),
        pytest.param(None, "B", "to_partner_central", id="new-link-hubspot-fills-empty-pc"),
    ],
)
def test_new_link_without_baseline(cfg, pc_title, hs_title, expected_kind):
    empty_base = frame(cfg, {})
    diff = three_way_diff(
        empty_base,
        frame(cfg, {"N1": {"project_title": pc_title}}),
        frame(cfg, {"N1": {"project_title": hs_title}}),
        cfg,
    )
    title = diff[diff["field"] == "project_title"]
    assert title["kind"].tolist() == [expected_kind]
    # Fields equal on both sides of a new link converge, so the first baseline gets written.
    assert set(diff.loc[diff["field"] != "project_title", "kind"]) == {"converged"}


def test_hubspot_owned_field_ignores_pc_edits():
    cfg = load_config(overrides={})
    raw = [f.model_dump() for f in cfg.fields]
    for f in raw:
        if f["name"] == "next_steps":
            f["direction"] = "hubspot_to_partner_central"
    cfg = load_config(overrides={"fields": raw})
    base = frame(cfg, {"O1": {}})
    diff = three_way_diff(base, frame(cfg, {"O1": {"next_steps": "PC edit"}}), frame(cfg, {"O1": {}}), cfg)
    assert rows_of(diff) == {("O1", "next_steps", "to_partner_central")}
    assert diff.iloc[0]["hs"] == "Call"


@pytest.mark.parametrize(
    ("pc_title", "expected"),
    [
        pytest.param("Migration", set(), id="unreadable-hubspot-value-is-not-a-change"),
        pytest.param("New", {("O1", "project_title", "to_hubspot")}, id="pc-change-still-flows"),
    ],
)
def test_skipped_fields_are_treated_as_unchanged(cfg, pc_title, expected):
    base = frame(cfg, {"O1": {}})
    hs = frame(cfg, {"O1": {"project_title": None}}, _skip_fields=["project_title,stage"])
    diff = three_way_diff(base, frame(cfg, {"O1": {"project_title": pc_title}}), hs, cfg)
    assert rows_of(diff) == expected


def test_arrow_string_baseline_compares_like_object(cfg):
    """A baseline read back from Parquet has pandas' Arrow-backed str dtype and NaN for nulls."""
    base = frame(cfg, {"O1": {}, "O2": {"next_steps": None}}).astype("str")
    base = base.where(base != "None")
    pc = frame(cfg, {"O1": {"stage": "Committed"}, "O2": {"next_steps": None}})
    diff = three_way_diff(base, pc, frame(cfg, {}), cfg)
    assert rows_of(diff) == {("O1", "stage", "to_hubspot")}


def test_duplicate_index_rows_use_the_last(cfg):
    pc = pd.concat(
        [frame(cfg, {"O1": {"project_title": "first"}}), frame(cfg, {"O1": {"project_title": "second"}})]
    )
    diff = three_way_diff(frame(cfg, {"O1": {}}), pc, frame(cfg, {}), cfg)
    assert diff["pc"].tolist() == ["second"]


def test_null_values_stay_none_not_nan(cfg):
    base = frame(cfg, {"O1": {}})
    diff = three_way_diff(base, frame(cfg, {"O1": {"next_steps": None}}), frame(cfg, {"O1": {}}), cfg)
    assert diff.iloc[0]["pc"] is None
    assert diff["pc"].dtype == object
