"""Pure logic of one-sided and per-run rollbacks, the dry-run diff and the automatic rollback decision."""

from __future__ import annotations

from typing import Any

import pytest

from cosell_sync.auto_revert import held_back, note, rejected_records
from cosell_sync.config import load_config
from cosell_sync.errors import ParamError
from cosell_sync.plan import Plan
from cosell_sync.rollback import (
    CHANGED_SINCE_RUN,
    NOT_SELECTED,
    ONE_WAY_FIELD,
    char_diff,
    format_plan,
    plan_rollback,
)

IDS = {"deal": "D1", "company": "C1", "contact": "P1"}


@pytest.fixture(scope="module")
def cfg() -> Any:
    return load_config()


def _plan(cfg: Any, target: dict[str, Any], pc: dict[str, Any], hs: dict[str, Any], **kw: Any) -> dict:
    plans = plan_rollback(
        cfg, list(target), target, pc, hs, pc_gated={}, pending=set(), hubspot_objects=IDS, **kw
    )
    return {p.field: p for p in plans}


def test_systems_limits_the_written_side(cfg: Any) -> None:
    both = {"next_steps": "new"}
    assert _plan(cfg, {"next_steps": "old"}, both, both, systems="hubspot")["next_steps"].write == ["hubspot"]
    only_pc = _plan(cfg, {"next_steps": "old"}, both, both, systems="partner_central")["next_steps"]
    assert only_pc.write == ["partner_central"]
    # only the unselected side differs: nothing to write, said so
    item = _plan(cfg, {"next_steps": "old"}, {"next_steps": "new"}, {"next_steps": "old"}, systems="hubspot")
    assert item["next_steps"].write == []
    assert item["next_steps"].skip_reason.startswith(NOT_SELECTED)
    with pytest.raises(ParamError, match="systems must be one of"):
        _plan(cfg, {"next_steps": "old"}, both, both, systems="salesforce")


def test_a_one_sided_rollback_of_a_field_the_sync_would_undo_is_skipped(cfg: Any) -> None:
    # review_comments is Partner Central's: a HubSpot-only restore would be overwritten by the next run.
    item = _plan(
        cfg, {"review_comments": "a"}, {"review_comments": "b"}, {"review_comments": "b"}, systems="hubspot"
    )["review_comments"]
    assert item.write == []
    assert item.skip_reason.startswith(ONE_WAY_FIELD)


def test_a_run_rollback_skips_a_field_changed_again_since_the_run(cfg: Any) -> None:
    run_wrote = {"next_steps": "run value"}
    ok = _plan(cfg, {"next_steps": "old"}, run_wrote, run_wrote, run_values=run_wrote)["next_steps"]
    assert sorted(ok.write) == ["hubspot", "partner_central"]
    later = _plan(cfg, {"next_steps": "old"}, run_wrote, {"next_steps": "later edit"}, run_values=run_wrote)[
        "next_steps"
    ]
    assert later.write == []
    assert later.skip_reason.startswith(CHANGED_SINCE_RUN)


def test_char_diff_shows_the_edit_in_whole_words_and_shortens_unchanged_text() -> None:
    old = "Run a proof of concept with the data platform team in April, then a pricing review with finance"
    assert char_diff(old, old.replace("April", "March")) == (
        "...(42 unchanged)...orm team in [-April,-]{+March,+} then a pric...(23 unchanged)..."
    )
    assert char_diff("", "new") == "{+new+}"
    assert char_diff("a\nb", "") == "[-a\\nb-]"


def test_format_plan_shows_short_values_whole_and_long_ones_as_a_diff(cfg: Any) -> None:
    short_old, short_new = "x" * 60, "y" * 60
    long_old = "We meet the customer's data team in March to plan the migration of the reporting stack"
    long_new = long_old.replace("March", "May")
    plans = plan_rollback(
        cfg,
        ["project_title", "next_steps"],
        {"project_title": short_old, "next_steps": long_old},
        {"project_title": short_new, "next_steps": long_new},
        {"project_title": short_new, "next_steps": long_old},
        pc_gated={},
        pending=set(),
        hubspot_objects=IDS,
    )
    text = format_plan(plans, "O1", "2026-01-01T00:00:00.000+00:00", dry_run=True)
    title = next(x for x in text.splitlines() if x.startswith("project_title"))
    assert short_old in title
    assert short_new in title
    steps = next(x for x in text.splitlines() if x.startswith("next_steps"))
    assert f"<{len(long_new)} chars: diff below>" in steps
    assert "[-May-]{+March+}" in text
    assert "  HubSpot: already at the target" in text


def test_auto_revert_holds_back_only_rejected_records(cfg: Any) -> None:
    plan = Plan(hubspot_updates={"O1": {"next_steps": "pc"}, "O2": {"next_steps": "pc2"}, "O3": {"x": "y"}})
    results = {
        "failed": {
            "O1": {"code": "ValidationException", "retriable": False},
            "O2": {"code": "ThrottlingException", "retriable": True},
            "submit:O3": {"code": "ValidationException", "retriable": False},
        }
    }
    assert set(rejected_records(results)) == {"O1"}
    out = held_back(cfg, plan, results, {"O1": {"next_steps": "before"}})
    assert out == {
        "O1": {"error": "ValidationException", "changes": {"next_steps": {"old": "before", "new": "pc"}}}
    }
    assert "aws_next_steps" in note(cfg, out["O1"])
    off = cfg.model_copy(update={"rollback": cfg.rollback.model_copy(update={"auto_revert_hubspot": False})})
    assert held_back(off, plan, results, {}) == {}
