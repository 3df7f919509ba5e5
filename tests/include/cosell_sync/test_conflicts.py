from __future__ import annotations

import pandas as pd
import pytest

from cosell_sync.config import SyncConfig, load_config
from cosell_sync.conflicts import conflict_id, resolve

T1 = "2025-02-01T00:00:00Z"
T2 = "2025-02-02T00:00:00Z"


@pytest.fixture(scope="module")
def cfg() -> SyncConfig:
    return load_config()


def diff_row(
    field: str, kind: str = "conflict", pc_ts: str | None = T1, hs_ts: str | None = T2
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "opportunity_id": ["O1"],
            "field": [field],
            "base": ["old"],
            "pc": ["pc"],
            "hs": ["hs"],
            "pc_changed": [True],
            "hs_changed": [kind == "conflict"],
            "kind": [kind],
            "_pc_last_modified": pd.to_datetime([pc_ts], utc=True),
            "_hs_last_modified": pd.to_datetime([hs_ts], utc=True),
        }
    )


@pytest.mark.parametrize(
    ("field", "kind", "pc_ts", "hs_ts", "winner", "value"),
    [
        pytest.param("project_title", "conflict", T1, T2, "hubspot", "hs", id="lww-hubspot-later"),
        pytest.param("project_title", "conflict", T2, T1, "partner_central", "pc", id="lww-pc-later"),
        pytest.param("project_title", "conflict", T1, T1, "partner_central", "pc", id="lww-tie-goes-to-pc"),
        pytest.param("project_title", "conflict", None, None, "partner_central", "pc", id="lww-no-times"),
        pytest.param("project_title", "conflict", None, T1, "hubspot", "hs", id="lww-only-hubspot-time"),
        pytest.param("stage", "conflict", T2, T1, "hubspot", "hs", id="field-strategy-hubspot-wins"),
        pytest.param("expected_spend_amount", "conflict", T1, T2, "manual", None, id="manual-field"),
        pytest.param("project_title", "to_hubspot", T1, T2, "partner_central", "pc", id="natural-to-hubspot"),
        pytest.param("project_title", "to_partner_central", T2, T1, "hubspot", "hs", id="natural-to-pc"),
        pytest.param("project_title", "converged", T1, T2, None, "pc", id="converged-no-winner"),
    ],
)
def test_resolve(cfg, field, kind, pc_ts, hs_ts, winner, value):
    out = resolve(diff_row(field, kind, pc_ts, hs_ts), cfg).iloc[0]
    assert out["winner"] == winner
    assert out["value"] == value


def test_default_strategy_comes_from_config():
    cfg = load_config(
        overrides={"conflicts": {"default_strategy": "partner_central_wins", "field_strategies": {}}}
    )
    out = resolve(diff_row("project_title", pc_ts=T1, hs_ts=T2), cfg).iloc[0]
    assert (out["strategy"], out["winner"]) == ("partner_central_wins", "partner_central")


def test_resolve_keeps_the_diff_and_handles_empty(cfg):
    diff = diff_row("project_title")
    out = resolve(diff, cfg)
    assert list(out.columns[: len(diff.columns)]) == list(diff.columns)
    assert "winner" not in diff.columns  # the input is not modified
    assert resolve(diff.iloc[0:0], cfg).empty


@pytest.mark.parametrize(
    ("other", "same"),
    [
        pytest.param(("O1", "stage", "Qualified", "Committed"), True, id="same-inputs-same-id"),
        pytest.param(("O2", "stage", "Qualified", "Committed"), False, id="other-record"),
        pytest.param(("O1", "project_title", "Qualified", "Committed"), False, id="other-field"),
        pytest.param(("O1", "stage", "Qualified", "Prospect"), False, id="new-hubspot-value"),
        pytest.param(("O1", "stage", "Committed", "Qualified"), False, id="values-swapped"),
    ],
)
def test_conflict_id_is_deterministic(other, same):
    first = conflict_id("O1", "stage", "Qualified", "Committed")
    assert first.startswith("conf-")
    assert (conflict_id(*other) == first) is same


def test_conflict_id_distinguishes_null_from_text():
    assert conflict_id("O1", "f", None, "x") != conflict_id("O1", "f", "None", "x")
