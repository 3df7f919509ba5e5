"""Pure logic of ``cosell_sync.rollback`` and ``cosell_sync.resolution`` (no API, no Airflow)."""

from __future__ import annotations

from typing import Any

import pytest

from cosell_sync.config import load_config
from cosell_sync.errors import NotFoundError
from cosell_sync.resolution import no_email, recorded_values
from cosell_sync.rollback import (
    NO_HUBSPOT_OBJECT,
    NOT_IN_AUDIT,
    PENDING_CONFLICT,
    format_plan,
    plan_rollback,
    select_fields,
)

IDS = {"deal": "D1", "company": "C1", "contact": "P1"}


@pytest.fixture(scope="module")
def cfg() -> Any:
    return load_config()


def _plan(cfg: Any, target: dict[str, Any], pc: dict[str, Any], hs: dict[str, Any], **kw: Any) -> dict:
    plans = plan_rollback(
        cfg,
        list(target) or list(pc),
        target,
        pc,
        hs,
        pc_gated=kw.get("pc_gated", {}),
        pending=kw.get("pending", set()),
        hubspot_objects=kw.get("ids", IDS),
    )
    return {p.field: p for p in plans}


def test_select_fields_defaults_to_all_and_rejects_unknown(cfg: Any) -> None:
    assert select_fields(cfg, None) == cfg.field_names()
    assert select_fields(cfg, []) == cfg.field_names()
    assert select_fields(cfg, ["next_steps", "project_title"]) == ["project_title", "next_steps"]
    with pytest.raises(ValueError, match="unknown field\\(s\\) nxt_steps"):
        select_fields(cfg, ["nxt_steps"])


def test_plan_writes_only_the_sides_that_differ(cfg: Any) -> None:
    plans = _plan(
        cfg,
        {"next_steps": "old", "project_title": "T"},
        {"next_steps": "new", "project_title": "T"},
        {"next_steps": "old", "project_title": "T"},
    )
    assert plans["next_steps"].write == ["partner_central"]
    assert plans["project_title"].write == []
    assert plans["project_title"].skip_reason is None


def test_plan_a_rerun_after_rollback_writes_nothing(cfg: Any) -> None:
    plans = _plan(cfg, {"next_steps": "old"}, {"next_steps": "old"}, {"next_steps": "old"})
    assert plans["next_steps"].write == []
    assert not plans["next_steps"].changes


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        pytest.param({"pc_gated": {"next_steps": "REVIEW_IN_PROGRESS"}}, "REVIEW_IN_PROGRESS", id="review"),
        pytest.param({"pending": {"next_steps"}}, PENDING_CONFLICT, id="pending-conflict"),
    ],
)
def test_plan_skips_the_whole_field_with_the_reason(cfg: Any, kw: dict[str, Any], reason: str) -> None:
    plans = _plan(cfg, {"next_steps": "old"}, {"next_steps": "new"}, {"next_steps": "new"}, **kw)
    assert plans["next_steps"].write == []
    assert plans["next_steps"].skip_reason == reason


def test_plan_unknown_target_and_missing_company_are_skipped(cfg: Any) -> None:
    plans = plan_rollback(
        cfg,
        ["company_city", "next_steps"],
        {"company_city": "Munich"},
        {"company_city": "Berlin", "next_steps": "x"},
        {"company_city": "Berlin", "next_steps": "x"},
        pc_gated={},
        pending=set(),
        hubspot_objects={**IDS, "company": None},
    )
    by_field = {p.field: p for p in plans}
    assert by_field["next_steps"].skip_reason == NOT_IN_AUDIT
    assert by_field["company_city"].skip_reason.startswith(NO_HUBSPOT_OBJECT)


def test_plan_one_way_field_is_not_rolled_back_against_its_owner(cfg: Any) -> None:
    plans = _plan(cfg, {"review_comments": "a"}, {"review_comments": "b"}, {"review_comments": "b"})
    assert plans["review_comments"].write == []
    assert plans["review_comments"].skip_reason.startswith("ONE_WAY_FIELD")
    # ...but a HubSpot copy that drifted from an unchanged owner is restored
    plans = _plan(cfg, {"review_comments": "a"}, {"review_comments": "a"}, {"review_comments": "b"})
    assert plans["review_comments"].write == ["hubspot"]


def test_format_plan_lists_current_values_and_target(cfg: Any) -> None:
    plans = plan_rollback(
        cfg,
        ["next_steps"],
        {"next_steps": "old"},
        {"next_steps": "new"},
        {"next_steps": "new"},
        pc_gated={},
        pending=set(),
        hubspot_objects=IDS,
    )
    text = format_plan(plans, "O1", "2026-01-01T00:00:00.000+00:00", dry_run=True)
    assert "DRY RUN" in text
    line = next(x for x in text.splitlines() if x.startswith("next_steps"))
    assert "new" in line
    assert "old" in line
    assert "write partner_central + hubspot" in line


def test_no_email_scrubs_addresses() -> None:
    assert no_email("asked by jane.doe@example.com today") == "asked by [email removed] today"
    assert no_email(None) is None


def test_recorded_values_come_from_the_conflict_item() -> None:
    item = {"conflict_id": "c1", "opportunity_id": "O1", "field": "next_steps"}
    assert recorded_values({**item, "partner_central_value": "p", "hubspot_value": None}) == ("p", None)
    with pytest.raises(NotFoundError, match="c1"):
        recorded_values({**item, "partner_central_value": None, "hubspot_value": None})
