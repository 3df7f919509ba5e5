"""``cosell_reconcile`` end to end: ``dag.test()`` against both emulators and moto (S3, DynamoDB).

Each scenario is what an operator would see: records created, fields moved, writes deferred or refused,
conflicts opened, and the counters the emulators keep of every API call.
"""

from __future__ import annotations

from typing import Any

import pytest
from scenarios import (
    canonical_hs,
    canonical_pc,
    config_with,
    editable,
    mapped_fields,
    new_value,
    set_hs,
    set_pc,
    synced_book,
    with_status,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]


def _seed(stack: Any, opportunities: int = 6, deals: int = 4, cosell: int = 2) -> dict[str, Any]:
    opp_ids = stack.pc_control("seed", {"opportunities": opportunities, "seed": 3, "catalog": "AWS"})[
        "opportunity_ids"
    ]
    seeded = stack.hs_control("seed", {"deals": deals, "contacts": deals, "companies": deals, "seed": 3})
    deal_ids = seeded["deals"]
    for deal_id in deal_ids[:cosell]:
        stack.update_deal(deal_id, {"aws_sync_enabled": "true"})
    return {"opportunities": opp_ids, "deals": deal_ids, "cosell": deal_ids[:cosell]}


def test_initial_load_creates_records_both_ways_then_rerun_writes_nothing(sync_stack: Any) -> None:
    seeded = _seed(sync_stack)
    first = sync_stack.report(sync_stack.run())
    assert first["partner_central_to_hubspot"]["created"] == len(seeded["opportunities"])
    assert first["hubspot_to_partner_central"]["created"] == len(seeded["cosell"])
    # every opportunity now has exactly one deal carrying its title
    for oid in seeded["opportunities"]:
        opp = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
        deal = sync_stack.deal_by_opportunity(oid)
        assert deal["properties"]["dealname"] == opp["Project"]["Title"]
    # co-sell deals got an opportunity whose PartnerOpportunityIdentifier is the deal id
    for deal_id in seeded["cosell"]:
        listed = sync_stack.pc.list_opportunities(Catalog="AWS", MaxResults=100)["OpportunitySummaries"]
        assert [s for s in listed if s.get("PartnerOpportunityIdentifier") == deal_id]

    sync_stack.reset_calls()
    second = sync_stack.report(sync_stack.run())
    pc_calls, hs_calls = sync_stack.calls()
    writes = {
        k: v for k, v in pc_calls["by_operation"].items() if not k.startswith(("Get", "List", "Search"))
    }
    assert writes == {}
    assert second["partner_central_to_hubspot"] == {"created": 0, "updated": 0, "failed": 0}
    assert second["hubspot_to_partner_central"]["updated"] == 0
    assert not [
        e
        for e in hs_calls["by_endpoint"]
        if "batch/update" in e or "batch/create" in e or "batch/upsert" in e
    ]


# ---------------------------------------------------------------------------------------------------
# each direction of each mapped field
# ---------------------------------------------------------------------------------------------------
def test_every_mapped_field_flows_partner_central_to_hubspot(sync_stack: Any) -> None:
    ids = synced_book(sync_stack)
    oid = editable(sync_stack, ids)[0]
    before = canonical_pc(sync_stack, oid)
    fields = [f for f in mapped_fields("partner_central_to_hubspot") if f.name not in ("review_status",)]
    wanted = {f.name: new_value(f, before.get(f.name)) for f in fields}
    set_pc(sync_stack, oid, wanted)
    report = sync_stack.report(sync_stack.run())
    assert report["partner_central_to_hubspot"]["updated"] == 1
    after = canonical_hs(sync_stack, oid)
    mismatched = {f: (wanted[f], after[f]) for f in wanted if after[f] != wanted[f]}
    assert mismatched == {}
    # the deal got a note saying what changed, and nothing was written back to Partner Central
    pc_calls, _ = sync_stack.calls()
    assert "UpdateOpportunity" not in pc_calls["by_operation"]


def test_every_mapped_field_flows_hubspot_to_partner_central(sync_stack: Any) -> None:
    ids = synced_book(sync_stack)
    oid = editable(sync_stack, ids)[0]
    before = canonical_hs(sync_stack, oid)
    fields = mapped_fields("hubspot_to_partner_central")
    wanted = {f.name: new_value(f, before.get(f.name)) for f in fields}
    set_hs(sync_stack, oid, wanted)
    untouched = {k: v for k, v in canonical_pc(sync_stack, oid).items() if k not in wanted}
    report = sync_stack.report(sync_stack.run())
    assert report["hubspot_to_partner_central"]["updated"] == 1
    after = canonical_pc(sync_stack, oid)
    mismatched = {f: (wanted[f], after[f]) for f in wanted if after[f] != wanted[f]}
    assert mismatched == {}
    # UpdateOpportunity replaces the whole record: everything we did not change must survive
    assert {k: after[k] for k in untouched} == untouched
    entries = [e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_OPPORTUNITY"]
    assert entries
    assert entries[0]["success"] is True
    assert set(entries[0]["changes"]) == set(wanted)


# ---------------------------------------------------------------------------------------------------
# conflicts
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("strategy", "last_writer", "winner"),
    [
        pytest.param("last_write_wins", "hubspot", "hubspot", id="last-write-wins-hubspot-later"),
        pytest.param("last_write_wins", "partner_central", "partner_central", id="last-write-wins-pc-later"),
        pytest.param("hubspot_wins", "partner_central", "hubspot", id="hubspot-wins"),
        pytest.param("partner_central_wins", "hubspot", "partner_central", id="partner-central-wins"),
    ],
)
def test_conflict_strategies(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any, strategy: str, last_writer: str, winner: str
) -> None:
    import time

    config_with(
        tmp_path,
        monkeypatch,
        {
            "default_strategy": "last_write_wins",
            "field_strategies": {"next_steps": strategy},
            "manual_resolution": [],
        },
    )
    ids = synced_book(sync_stack)
    oid = editable(sync_stack, ids)[0]
    pc_value, hs_value = "Partner Central says: call next week", "HubSpot says: send the proposal"
    writes = [
        ("partner_central", lambda: set_pc(sync_stack, oid, {"next_steps": pc_value})),
        ("hubspot", lambda: set_hs(sync_stack, oid, {"next_steps": hs_value})),
    ]
    if writes[0][0] == last_writer:
        writes.reverse()
    for _, write in writes:
        write()
        time.sleep(0.05)  # distinct modification times, so "last" is well defined
    sync_stack.run()
    expected = hs_value if winner == "hubspot" else pc_value
    assert canonical_pc(sync_stack, oid)["next_steps"] == expected
    assert canonical_hs(sync_stack, oid)["next_steps"] == expected


def test_manual_conflict_opens_pending_item_and_task_once(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    config_with(
        tmp_path,
        monkeypatch,
        {"default_strategy": "last_write_wins", "field_strategies": {}, "manual_resolution": ["next_steps"]},
    )
    ids = synced_book(sync_stack)
    oid = editable(sync_stack, ids)[0]
    set_pc(sync_stack, oid, {"next_steps": "Partner Central value"})
    set_hs(sync_stack, oid, {"next_steps": "HubSpot value"})
    report = sync_stack.report(sync_stack.run())
    assert report["conflicts"] == 1
    # neither side was overwritten: a person decides
    assert canonical_pc(sync_stack, oid)["next_steps"] == "Partner Central value"
    assert canonical_hs(sync_stack, oid)["next_steps"] == "HubSpot value"
    deal = sync_stack.deal_by_opportunity(oid)
    assert deal["properties"]["aws_conflict_status"] == "Pending"
    _, hs_calls = sync_stack.calls()
    assert hs_calls["by_endpoint"].get("POST /crm/v3/objects/tasks/batch/create") == 1
    # a re-run neither opens a second conflict nor creates a second task
    sync_stack.reset_calls()
    sync_stack.run(conf={"mode": "full"})
    _, hs_calls = sync_stack.calls()
    assert "POST /crm/v3/objects/tasks/batch/create" not in hs_calls["by_endpoint"]
    from cosell_sync.config import load_config
    from cosell_sync.conflict_store import ConflictStore

    pending = ConflictStore(sync_stack.aws("dynamodb"), load_config().storage.state_table, "AWS").pending(oid)
    assert [(p["field"], p["status"]) for p in pending] == [("next_steps", "PENDING")]


# ---------------------------------------------------------------------------------------------------
# review-state gating
# ---------------------------------------------------------------------------------------------------
def test_review_state_defers_then_applies_allowed_fields_and_never_sends_locked_ones(sync_stack: Any) -> None:
    ids = synced_book(sync_stack, opportunities=12)
    submitted = with_status(sync_stack, ids, "Submitted", "In review")
    assert submitted, "the seeded book has no opportunity under review"
    oid = submitted[0]
    title_before = canonical_pc(sync_stack, oid)["project_title"]
    set_hs(sync_stack, oid, {"target_close_date": "2027-09-30", "project_title": "Renamed while in review"})

    # 1. Submitted / In review: nothing is sent; the change is kept for later
    sync_stack.reset_calls()
    report = sync_stack.report(sync_stack.run())
    assert report["hubspot_to_partner_central"]["deferred"] == 1
    pc_calls, _ = sync_stack.calls()
    assert "UpdateOpportunity" not in pc_calls["by_operation"]
    assert [e for e in sync_stack.audit(oid) if e["action"] == "DEFERRED"]

    # 2. Action Required: the close date may change now, the title still may not
    sync_stack.pc_control(
        "simulate/review",
        {
            "catalog": "AWS",
            "identifier": oid,
            "review_status": "Action Required",
            "review_comments": "Please confirm the close date",
        },
    )
    sync_stack.run()
    after = canonical_pc(sync_stack, oid)
    assert after["target_close_date"] == "2027-09-30"
    assert after["project_title"] == title_before

    # 3. Approved: Project.Title is locked for good; Partner Central's value goes back to HubSpot
    submitted_again = with_status(sync_stack, [oid], "Submitted", "In review")
    if submitted_again:  # an Action Required update re-enters review, as AWS documents
        sync_stack.pc_control(
            "simulate/review", {"catalog": "AWS", "identifier": oid, "review_status": "Approved"}
        )
    sync_stack.run()
    assert canonical_pc(sync_stack, oid)["project_title"] == title_before
    assert canonical_hs(sync_stack, oid)["project_title"] == title_before
    skipped = [e for e in sync_stack.audit(oid) if e["action"] == "SKIPPED"]
    assert skipped
    assert "LOCKED_AFTER_APPROVAL" in str(skipped[0]["metadata"])


# ---------------------------------------------------------------------------------------------------
# races, partial failures, dry runs, backfills
# ---------------------------------------------------------------------------------------------------
def test_conflict_exception_race_rereads_and_keeps_both_changes(sync_stack: Any, monkeypatch: Any) -> None:
    from cosell_sync import reconcile

    ids = synced_book(sync_stack)
    oid = editable(sync_stack, ids)[0]
    # Both sides changed: the extract reads the opportunity, and apply reuses that read (and its
    # LastModifiedDate) instead of reading again.
    set_pc(sync_stack, oid, {"next_steps": "Changed in Partner Central before the run"})
    set_hs(sync_stack, oid, {"target_close_date": "2027-10-31"})
    real_apply = reconcile.apply_partner_central

    def racing_apply(env: Any, run: Any, planned: Any, creates: Any = None) -> Any:
        # Someone edits the opportunity in the console after we read it: our LastModifiedDate is stale.
        set_pc(sync_stack, oid, {"project_title": "Renamed in the console meanwhile"})
        return real_apply(env, run, planned, creates)

    monkeypatch.setattr(reconcile, "apply_partner_central", racing_apply)
    sync_stack.reset_calls()
    sync_stack.run()
    after = canonical_pc(sync_stack, oid)
    assert after["target_close_date"] == "2027-10-31"
    assert after["project_title"] == "Renamed in the console meanwhile"  # the re-merge kept the console edit
    assert after["next_steps"] == "Changed in Partner Central before the run"
    pc_calls, _ = sync_stack.calls()
    assert pc_calls["by_operation"]["UpdateOpportunity"] == 2  # the stale attempt, then the re-merged one
    entry = next(e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_OPPORTUNITY")
    assert entry["success"] is True


def test_partial_failure_207_is_retried_next_run(sync_stack: Any) -> None:
    ids = synced_book(sync_stack)
    first, second = editable(sync_stack, ids)[:2] if len(editable(sync_stack, ids)) > 1 else ids[:2]
    set_pc(sync_stack, first, {"next_steps": "First changed in Partner Central"})
    set_pc(sync_stack, second, {"next_steps": "Second changed in Partner Central"})
    failing_deal = sync_stack.deal_by_opportunity(second)["id"]
    sync_stack.hs_control("faults", {"fail_ids": [failing_deal]})
    # A run with a failed write ends failed at its report (report.fail_on_record_errors), all else committed.
    report = sync_stack.report(sync_stack.run(expect="failed_at_report"))
    assert report["partner_central_to_hubspot"] == {"created": 0, "updated": 1, "failed": 1}
    assert canonical_hs(sync_stack, first)["next_steps"] == "First changed in Partner Central"
    assert canonical_hs(sync_stack, second)["next_steps"] != "Second changed in Partner Central"
    failed = [e for e in sync_stack.audit(second) if e["action"] == "UPDATE_DEAL"]
    assert failed
    assert failed[0]["success"] is False
    assert failed[0]["error"]
    # nothing changes in Partner Central again, yet the next run retries and succeeds
    sync_stack.hs_control("faults", {"fail_ids": []})
    report = sync_stack.report(sync_stack.run())
    assert report["partner_central_to_hubspot"]["updated"] == 1
    assert canonical_hs(sync_stack, second)["next_steps"] == "Second changed in Partner Central"


def test_dry_run_writes_nothing_and_stores_the_full_plan(sync_stack: Any, caplog: Any) -> None:
    ids = synced_book(sync_stack)
    a, b = editable(sync_stack, ids)[:2]
    old_steps = canonical_hs(sync_stack, a)["next_steps"]
    old_close = canonical_pc(sync_stack, b)["target_close_date"]
    set_pc(sync_stack, a, {"next_steps": "Dry run: from Partner Central"})
    set_hs(sync_stack, b, {"target_close_date": "2027-11-30"})
    sync_stack.reset_calls()
    caplog.clear()
    run = sync_stack.run(conf={"dry_run": True})
    # The plan task's log shows each planned write as old and new value, per field.
    logged = [r.getMessage() for r in caplog.records]
    assert (
        f"DRY RUN - HubSpot deal of {a}, next_steps: {old_steps!r} -> 'Dry run: from Partner Central'"
        in logged
    )
    assert f"DRY RUN - opportunity {b}, target_close_date: {old_close!r} -> '2027-11-30'" in logged
    pc_calls, hs_calls = sync_stack.calls()
    assert not [op for op in pc_calls["by_operation"] if not op.startswith(("Get", "List", "Search"))]
    assert not [
        e
        for e in hs_calls["by_endpoint"]
        if e.startswith(("PATCH", "PUT", "DELETE"))
        or any(w in e for w in ("batch/update", "batch/create", "batch/upsert", "batch/archive"))
    ]
    plan = sync_stack.plan(run)
    assert plan["hubspot_updates"] == {a: {"next_steps": "Dry run: from Partner Central"}}
    assert plan["partner_central_updates"] == {b: {"target_close_date": "2027-11-30"}}
    # the watermark did not move: the next real run applies both changes
    sync_stack.run()
    assert canonical_hs(sync_stack, a)["next_steps"] == "Dry run: from Partner Central"
    assert canonical_pc(sync_stack, b)["target_close_date"] == "2027-11-30"


def test_backfill_run_reconciles_only_its_interval(sync_stack: Any) -> None:
    """A backfill run (run_type backfill) reads what changed in its data interval and keeps the watermark.

    ``dag.test()`` cannot create a BACKFILL run, so this drives the same steps the tasks call, with the
    run description Airflow gives a backfill run (the scheduler path is exercised by the DAG tests above).
    """
    from datetime import UTC, datetime, timedelta

    from cosell_runtime.env import build_env
    from cosell_sync import reconcile

    ids = synced_book(sync_stack)
    old, new = editable(sync_stack, ids)[:2]
    set_pc(sync_stack, old, {"next_steps": "Changed inside the interval"})
    interval_end = datetime.now(UTC) + timedelta(milliseconds=5)
    import time

    time.sleep(0.2)
    set_pc(sync_stack, new, {"next_steps": "Changed after the interval"})
    env = build_env("AWS")
    mark_before = env.watermarks.get("AWS", "partner_central")
    run = reconcile.prepare(
        env,
        {},
        {
            "run_id": "backfill__test",
            "run_type": "backfill",
            "dag_id": "cosell_reconcile",
            "data_interval_start": (interval_end - timedelta(minutes=30)).isoformat(),
            "data_interval_end": interval_end.isoformat(),
        },
    )
    pc = reconcile.extract_partner_central(env, run)
    hs = reconcile.extract_hubspot(env, run, pc)
    planned = reconcile.plan(env, run, pc, hs)
    pc_applied = reconcile.apply_partner_central(env, run, planned)
    hs_applied = reconcile.apply_hubspot(env, run, planned, pc_applied)
    reconcile.commit(env, run, planned, pc_applied, hs_applied)
    assert canonical_hs(sync_stack, old)["next_steps"] == "Changed inside the interval"
    assert canonical_hs(sync_stack, new)["next_steps"] != "Changed after the interval"
    assert env.watermarks.get("AWS", "partner_central") == mark_before
