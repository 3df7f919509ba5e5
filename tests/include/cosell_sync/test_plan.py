from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from cosell_sync.config import SyncConfig, load_config
from cosell_sync.conflicts import conflict_id, resolve
from cosell_sync.diff import three_way_diff
from cosell_sync.plan import build_plan

BASE = {
    "project_title": "Migration",
    "stage": "Qualified",
    "expected_spend_amount": "1000",
    "company_city": "Seattle",
    "company_website": "https://acme.example.com",
}


@pytest.fixture(scope="module")
def cfg() -> SyncConfig:
    return load_config()


def frame(
    cfg: SyncConfig, rows: dict[str, dict[str, Any]], modified: str, **extra: list[Any]
) -> pd.DataFrame:
    records = {oid: {n: v.get(n, BASE.get(n)) for n in cfg.field_names()} for oid, v in rows.items()}
    out = pd.DataFrame.from_dict(records, orient="index", dtype=object).reindex(columns=cfg.field_names())
    out.index = pd.Index(list(rows), dtype=object, name="opportunity_id")
    out["_last_modified"] = pd.to_datetime([modified] * len(out), utc=True)
    for column, values in extra.items():
        out[column] = pd.Series(values, index=out.index, dtype=object)
    return out


def plan_for(
    cfg,
    review: str | None,
    pc_changes: dict[str, Any],
    hs_changes: dict[str, Any],
    pc_time: str = "2025-02-01T00:00:00Z",
    hs_time: str = "2025-02-02T00:00:00Z",
):
    base = frame(cfg, {"O1": {}}, "2025-01-01T00:00:00Z")
    pc = frame(cfg, {"O1": pc_changes}, pc_time, _review_status=[review])
    hs = frame(cfg, {"O1": hs_changes}, hs_time)
    return build_plan(resolve(three_way_diff(base, pc, hs, cfg), cfg), pc, base, cfg)


@pytest.mark.parametrize(
    ("review", "hs_changes", "pc_updates", "hs_updates", "deferred", "blocked"),
    [
        pytest.param(
            "Pending Submission",
            {"project_title": "New"},
            {"O1": {"project_title": "New"}},
            {},
            [],
            [],
            id="pending-goes-to-pc",
        ),
        pytest.param(
            "In review",
            {"project_title": "New"},
            {},
            {},
            [("project_title", "REVIEW_IN_PROGRESS")],
            [],
            id="in-review-is-deferred",
        ),
        pytest.param(
            "Submitted",
            {"stage": "Committed"},
            {},
            {},
            [("stage", "REVIEW_IN_PROGRESS")],
            [],
            id="submitted-is-deferred",
        ),
        pytest.param(
            "Action Required",
            {"company_city": "Tacoma", "stage": "Committed"},
            {"O1": {"company_city": "Tacoma"}},
            {},
            [("stage", "NOT_EDITABLE_IN_ACTION_REQUIRED")],
            [],
            id="action-required-splits",
        ),
        pytest.param(
            "Approved",
            {"project_title": "New", "stage": "Committed"},
            {"O1": {"stage": "Committed"}},
            {"O1": {"project_title": "Migration"}},
            [],
            [("project_title", "LOCKED_AFTER_APPROVAL")],
            id="approved-locked-field-is-pushed-back",
        ),
        pytest.param(
            "Rejected",
            {"stage": "Committed"},
            {},
            {},
            [],
            [("stage", "REJECTED_READ_ONLY")],
            id="rejected-is-blocked",
        ),
        pytest.param(
            "In Review",
            {"stage": "Committed"},
            {},
            {},
            [("stage", "UNKNOWN_REVIEW_STATUS")],
            [],
            id="unknown-status-waits-instead-of-crashing",
        ),
    ],
)
def test_partner_central_writes_are_gated(cfg, review, hs_changes, pc_updates, hs_updates, deferred, blocked):
    plan = plan_for(cfg, review, {}, hs_changes)
    assert plan.partner_central_updates == pc_updates
    assert plan.hubspot_updates == hs_updates
    assert [(d["field"], d["reason"]) for d in plan.deferred] == deferred
    assert [(b["field"], b["reason"]) for b in plan.blocked] == blocked


def test_pc_changes_go_to_hubspot_whatever_the_review_state(cfg):
    plan = plan_for(cfg, "In review", {"stage": "Technical Validation", "company_website": None}, {})
    assert plan.hubspot_updates == {"O1": {"stage": "Technical Validation", "company_website": None}}
    assert plan.partner_central_updates == {}


def test_manual_conflict_is_listed_with_a_stable_id(cfg):
    plan = plan_for(
        cfg, "Pending Submission", {"expected_spend_amount": "2000"}, {"expected_spend_amount": "3000"}
    )
    assert plan.conflicts == [
        {
            "opportunity_id": "O1",
            "field": "expected_spend_amount",
            "pc": "2000",
            "hs": "3000",
            "conflict_id": conflict_id("O1", "expected_spend_amount", "2000", "3000"),
            "conflict_type": "SIMULTANEOUS_UPDATE",
        }
    ]
    assert plan.hubspot_updates == {}
    assert plan.partner_central_updates == {}
    again = plan_for(
        cfg, "Pending Submission", {"expected_spend_amount": "2000"}, {"expected_spend_amount": "3000"}
    )
    assert again.conflicts[0]["conflict_id"] == plan.conflicts[0]["conflict_id"]


@pytest.mark.parametrize(
    ("pc_time", "hs_time", "side"),
    [
        pytest.param("2025-02-03T00:00:00Z", "2025-02-02T00:00:00Z", "hubspot_updates", id="pc-wrote-last"),
        pytest.param(
            "2025-02-01T00:00:00Z", "2025-02-02T00:00:00Z", "partner_central_updates", id="hs-wrote-last"
        ),
    ],
)
def test_last_write_wins_conflict_lands_on_the_loser(cfg, pc_time, hs_time, side):
    plan = plan_for(
        cfg, "Pending Submission", {"project_title": "PC"}, {"project_title": "HS"}, pc_time, hs_time
    )
    winner_value = "PC" if side == "hubspot_updates" else "HS"
    assert getattr(plan, side) == {"O1": {"project_title": winner_value}}


def test_converged_fields_are_reported(cfg):
    plan = plan_for(cfg, "Pending Submission", {"project_title": "Same"}, {"project_title": "Same"})
    assert plan.converged == ["O1"]
    assert plan.converged_values == {"O1": {"project_title": "Same"}}
    assert plan.summary()["converged"] == 1


def test_review_status_falls_back_to_the_baseline(cfg):
    base = frame(cfg, {"O1": {}}, "2025-01-01T00:00:00Z", _review_status=["Submitted"])
    hs = frame(cfg, {"O1": {"project_title": "New"}}, "2025-02-02T00:00:00Z")
    empty_pc = frame(cfg, {}, "2025-01-01T00:00:00Z")
    plan = build_plan(resolve(three_way_diff(base, empty_pc, hs, cfg), cfg), empty_pc, base, cfg)
    assert [d["reason"] for d in plan.deferred] == ["REVIEW_IN_PROGRESS"]


def test_summary_and_frame(cfg):
    plan = plan_for(
        cfg, "Approved", {"company_city": "Tacoma"}, {"project_title": "New", "stage": "Committed"}
    )
    assert plan.summary() == {
        "hubspot_records": 1,
        "hubspot_fields": 2,
        "partner_central_records": 1,
        "partner_central_fields": 1,
        "partner_central_other_contacts": 0,
        "hubspot_other_contacts": 0,
        "conflicts": 0,
        "deferred": 0,
        "blocked": 1,
        "converged": 0,
    }
    actions = plan.to_frame()
    assert sorted(zip(actions["action"], actions["field"], strict=True)) == [
        ("blocked", "project_title"),
        ("update_hubspot", "company_city"),
        ("update_hubspot", "project_title"),
        ("update_partner_central", "stage"),
    ]


def test_empty_diff_gives_an_empty_plan(cfg):
    base = frame(cfg, {"O1": {}}, "2025-01-01T00:00:00Z")
    plan = build_plan(resolve(three_way_diff(base, base, base, cfg), cfg), base, base, cfg)
    assert plan.summary() == dict.fromkeys(plan.summary(), 0)
    assert plan.to_frame().empty


def test_gating_is_per_record_in_one_diff(cfg: SyncConfig) -> None:
    # Several records in one diff: each PC-bound change is gated by its own record's review status.
    statuses = ["Pending Submission", "In review", "Rejected", "Pending Submission"]
    oids = ["O1", "O2", "O3", "O4"]
    base = frame(cfg, {o: {} for o in oids}, "2025-01-01T00:00:00Z")
    pc = frame(cfg, {o: {} for o in oids}, "2025-02-01T00:00:00Z", _review_status=statuses)
    hs = frame(cfg, {o: {"next_steps": f"HS {o}"} for o in oids}, "2025-02-02T00:00:00Z")
    plan = build_plan(resolve(three_way_diff(base, pc, hs, cfg), cfg), pc, base, cfg)
    assert plan.partner_central_updates == {"O1": {"next_steps": "HS O1"}, "O4": {"next_steps": "HS O4"}}
    assert [(d["opportunity_id"], d["reason"], d["value"]) for d in plan.deferred] == [
        ("O2", "REVIEW_IN_PROGRESS", "HS O2")
    ]
    assert [(b["opportunity_id"], b["reason"]) for b in plan.blocked] == [("O3", "REJECTED_READ_ONLY")]


def test_expected_holds_the_pc_value_each_update_was_planned_on(cfg: SyncConfig) -> None:
    # The writer re-diffs against these after a ConflictException, so a newer console edit is not lost.
    plan = plan_for(cfg, "Pending Submission", {"stage": "Prospect"}, {"project_title": "New"})
    assert plan.partner_central_updates == {"O1": {"project_title": "New"}}
    assert plan.expected == {"O1": {"project_title": "Migration"}}
    assert plan.hubspot_updates == {"O1": {"stage": "Prospect"}}


def test_stored_plan_round_trips_what_apply_and_commit_read(cfg: SyncConfig) -> None:
    import json

    from cosell_sync.plan import Plan

    plan = plan_for(
        cfg, "Pending Submission", {"project_title": "Same"}, {"project_title": "Same", "stage": "X"}
    )
    plan.read_failures = [{"opportunity_id": "O9", "error": {"type": "ThrottledError", "retriable": True}}]
    plan.create_opportunities = [{"deal_id": "D7", "values": {"project_title": "New"}, "submit": False}]
    plan.run_id = "scheduled__1"
    plan.sources = {"partner_central": "runs/AWS/x/partner_central", "hubspot": "runs/AWS/x/hubspot"}
    stored = Plan.from_document(json.loads(json.dumps(plan.to_document())))
    for name in Plan.DOCUMENT_KEYS:
        assert getattr(stored, name) == getattr(plan, name), name
    # A record the extract could not read must survive plan.json, or commit never queues it for retry.
    assert stored.read_failures == plan.read_failures
    assert stored.counts() == plan.counts()
