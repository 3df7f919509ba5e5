"""``cosell_resolve_conflict`` and ``cosell_rollback`` end to end against both emulators and moto.

Helpers are copied from ``test_reconcile_scenarios.py`` (kept independent of that module on purpose).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from scenarios import canonical_pc, config_with, editable, set_pc, synced_book, with_status, writes, xcom

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]


# ---------------------------------------------------------------------------------------------------
# helpers (copied from test_reconcile_scenarios.py)
# ---------------------------------------------------------------------------------------------------


def _hs_next_steps(stack: Any, oid: str) -> str | None:
    # next_steps lives on the deal; reading just the deal keeps these scenarios short.
    value = stack.deal_by_opportunity(oid)["properties"].get("aws_next_steps")
    return value or None


def _set_hs_deal(stack: Any, oid: str, changes: dict[str, str]) -> None:
    """A deal-level edit in HubSpot (every field used here lives on the deal)."""
    from cosell_sync.config import load_config
    from cosell_sync.mapping import changes_to_hubspot

    props = changes_to_hubspot(changes, load_config())
    assert set(props) == {"deal"}
    stack.update_deal(stack.deal_by_opportunity(oid)["id"], props["deal"])


def _conflicts(stack: Any) -> Any:
    from cosell_sync.config import load_config
    from cosell_sync.conflict_store import ConflictStore

    return ConflictStore(stack.aws("dynamodb"), load_config().storage.state_table, "AWS")


def _task_status(stack: Any, task_id: str) -> str:
    import requests

    r = requests.get(
        f"{stack.hs_url}/crm/v3/objects/tasks/{task_id}",
        params={"properties": "hs_task_status"},
        headers={"Authorization": "Bearer test-token"},
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["properties"]["hs_task_status"]


# ---------------------------------------------------------------------------------------------------
# cosell_resolve_conflict
# ---------------------------------------------------------------------------------------------------


def test_resolve_manual_conflicts_each_way(sync_stack: Any, tmp_path: Any, monkeypatch: Any) -> None:
    """One book, three conflicts in one run: resolved with HubSpot's value, with PC's, and refused.

    The three cases share the setup because each reconcile run costs seconds; they are independent
    records, so one case cannot mask another.
    """
    config_with(
        tmp_path,
        monkeypatch,
        {"default_strategy": "last_write_wins", "field_strategies": {}, "manual_resolution": ["next_steps"]},
    )
    ids = synced_book(sync_stack)
    use_hs, use_pc = editable(sync_stack, ids)[:2]
    # Partner Central cannot take next_steps in these review states: resolving for HubSpot must wait.
    (in_review, *_) = with_status(sync_stack, ids, "Submitted", "In review", "Action Required", "Rejected")
    for oid in (use_hs, use_pc, in_review):
        set_pc(sync_stack, oid, {"next_steps": f"Partner Central value {oid}"})
        _set_hs_deal(sync_stack, oid, {"next_steps": f"HubSpot value {oid}"})
    assert sync_stack.report(sync_stack.run())["conflicts"] == 3
    store = _conflicts(sync_stack)
    pending = {oid: store.pending(oid)[0] for oid in (use_hs, use_pc, in_review)}
    assert all(p["task_id"] for p in pending.values())

    def conf(oid: str, resolution: str) -> dict[str, Any]:
        return {
            "conflict_id": pending[oid]["conflict_id"],
            "resolution": resolution,
            "reason": "confirmed with the customer",
            "resolved_by": "hs-owner-4711",
        }

    # 1. refused while Partner Central cannot take the value: nothing written, still pending
    sync_stack.reset_calls()
    sync_stack.run("cosell_resolve_conflict", conf=conf(in_review, "USE_HUBSPOT_VALUE"), expect="failed")
    assert writes(sync_stack) == ({}, [])
    assert canonical_pc(sync_stack, in_review)["next_steps"] == f"Partner Central value {in_review}"
    assert store.get(pending[in_review]["conflict_id"])["status"] == "PENDING"
    assert not [e for e in sync_stack.audit(in_review) if e["action"] == "CONFLICT_RESOLVED"]

    # 2. each way: both systems hold the chosen value, conflict resolved, task completed, deal Resolved
    for oid, resolution, side in (
        (use_hs, "USE_HUBSPOT_VALUE", "HubSpot"),
        (use_pc, "USE_PARTNER_CENTRAL_VALUE", "Partner Central"),
    ):
        sync_stack.run("cosell_resolve_conflict", conf=conf(oid, resolution))
        winner = f"{side} value {oid}"
        loser = f"{'Partner Central' if side == 'HubSpot' else 'HubSpot'} value {oid}"
        assert canonical_pc(sync_stack, oid)["next_steps"] == winner
        assert _hs_next_steps(sync_stack, oid) == winner
        resolved = store.get(pending[oid]["conflict_id"])
        assert (resolved["status"], resolved["resolution"]) == ("RESOLVED", resolution)
        assert resolved["resolved_value"] == winner
        assert resolved["resolved_by"] == "hs-owner-4711"
        assert sync_stack.deal_by_opportunity(oid)["properties"]["aws_conflict_status"] == "Resolved"
        assert _task_status(sync_stack, pending[oid]["task_id"]) == "COMPLETED"
        (entry,) = [e for e in sync_stack.audit(oid) if e["action"] == "CONFLICT_RESOLVED"]
        assert entry["changes"] == {"next_steps": {"old": loser, "new": winner}}
        assert entry["user"] == "hs-owner-4711"
        assert entry["metadata"]["conflictId"] == pending[oid]["conflict_id"]

    # 3. a second run for a resolved conflict: "already resolved", nothing written anywhere
    sync_stack.reset_calls()
    sync_stack.run("cosell_resolve_conflict", conf=conf(use_hs, "USE_HUBSPOT_VALUE"))
    assert writes(sync_stack) == ({}, [])

    # 4. the next reconcile writes nothing for the resolved fields (the refused one stays frozen)
    sync_stack.run()
    pc_writes, hs_writes = writes(sync_stack)
    assert pc_writes == {}
    assert hs_writes == []
    assert [p["opportunity_id"] for p in store.pending()] == [in_review]


# ---------------------------------------------------------------------------------------------------
# cosell_rollback
# ---------------------------------------------------------------------------------------------------
def test_rollback_dry_run_then_apply(sync_stack: Any) -> None:
    oid = editable(sync_stack, synced_book(sync_stack))[0]
    target = datetime.now(UTC).isoformat()
    before = canonical_pc(sync_stack, oid)["next_steps"]
    assert before == _hs_next_steps(sync_stack, oid)
    set_pc(sync_stack, oid, {"next_steps": "Changed in Partner Central after T"})
    sync_stack.run()
    assert _hs_next_steps(sync_stack, oid) == "Changed in Partner Central after T"
    changed = [e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_DEAL"]
    assert changed
    assert changed[0]["changes"]["next_steps"]["new"] == "Changed in Partner Central after T"

    # 1. dry run (the default): the plan names the field, nothing is written
    sync_stack.reset_calls()
    run = sync_stack.run("cosell_rollback", conf={"opportunity_id": oid, "target_timestamp": target})
    assert writes(sync_stack) == ({}, [])
    plan = xcom(run, "rollback")
    rows = {p["field"]: p for p in plan["plan"]}
    assert rows["next_steps"]["partner_central"] == "Changed in Partner Central after T"
    assert rows["next_steps"]["hubspot"] == "Changed in Partner Central after T"
    assert rows["next_steps"]["target"] == before
    assert sorted(rows["next_steps"]["write"]) == ["hubspot", "partner_central"]
    # only the field changed after T is planned for writing
    assert [f for f, p in rows.items() if p["write"]] == ["next_steps"]
    assert not [e for e in sync_stack.audit(oid) if e["action"] == "ROLLBACK"]

    # 2. apply it
    sync_stack.run(
        "cosell_rollback",
        conf={"opportunity_id": oid, "target_timestamp": target, "fields": ["next_steps"], "dry_run": False},
    )
    assert canonical_pc(sync_stack, oid)["next_steps"] == before
    assert _hs_next_steps(sync_stack, oid) == before
    entries = [e for e in sync_stack.audit(oid) if e["action"] == "ROLLBACK"]
    assert sorted(e["direction"] for e in entries) == [
        "hubspot_to_partner_central",
        "partner_central_to_hubspot",
    ]
    for e in entries:
        assert e["changes"] == {"next_steps": {"old": "Changed in Partner Central after T", "new": before}}
        assert e["metadata"]["targetTimestamp"].startswith(target[:19])

    # 3. the next reconcile writes nothing
    sync_stack.reset_calls()
    sync_stack.run()
    assert writes(sync_stack) == ({}, [])
