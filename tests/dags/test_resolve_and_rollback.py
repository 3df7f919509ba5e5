"""``cosell_resolve_conflict`` and ``cosell_rollback`` end to end against both emulators and moto.

Helpers are copied from ``test_reconcile_scenarios.py`` (kept independent of that module on purpose).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]


# ---------------------------------------------------------------------------------------------------
# helpers (copied from test_reconcile_scenarios.py)
# ---------------------------------------------------------------------------------------------------
def _synced_book(stack: Any, opportunities: int = 8) -> list[str]:
    ids = stack.pc_control("seed", {"opportunities": opportunities, "seed": 11, "catalog": "AWS"})[
        "opportunity_ids"
    ]
    stack.run()
    return ids


def _editable(stack: Any, ids: list[str]) -> list[str]:
    found = [
        oid
        for oid in ids
        if stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)["LifeCycle"].get("ReviewStatus")
        == "Pending Submission"
    ]
    assert found, "the seeded book has no opportunity in Pending Submission"
    return found


def _canonical_pc(stack: Any, oid: str) -> dict[str, Any]:
    from cosell_sync.config import load_config
    from cosell_sync.mapping import opportunities_to_frame

    cfg = load_config()
    frame = opportunities_to_frame([stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)], cfg)
    return {f: frame.iloc[0][f] for f in cfg.field_names()}


def _hs_next_steps(stack: Any, oid: str) -> str | None:
    # next_steps lives on the deal; reading just the deal keeps these scenarios short.
    value = stack.deal_by_opportunity(oid)["properties"].get("aws_next_steps")
    return value or None


def _set_pc(stack: Any, oid: str, changes: dict[str, str]) -> None:
    """An edit in the Partner Central console (AWS-side), through the emulator's control."""
    from cosell_sync.config import load_config
    from cosell_sync.mapping import get_path, set_path
    from cosell_sync.transforms import converters_for

    cfg = load_config()
    convs = converters_for(cfg)
    opp = stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
    patch: dict[str, Any] = {}
    for name, value in changes.items():
        path = cfg.field(name).partner_central
        root = path.split(".")[0].split("[")[0]
        if root not in patch:
            patch[root] = get_path(opp, root)
        set_path(patch, path, convs[name].to_partner_central(value))
    stack.pc_control("simulate/aws-update", {"catalog": "AWS", "identifier": oid, **patch})


def _set_hs_deal(stack: Any, oid: str, changes: dict[str, str]) -> None:
    """A deal-level edit in HubSpot (every field used here lives on the deal)."""
    from cosell_sync.config import load_config
    from cosell_sync.mapping import changes_to_hubspot

    props = changes_to_hubspot(changes, load_config())
    assert set(props) == {"deal"}
    stack.update_deal(stack.deal_by_opportunity(oid)["id"], props["deal"])


def _config_with(tmp_path: Any, monkeypatch: Any, conflicts: dict[str, Any]) -> None:
    import yaml

    from cosell_sync.schedule import DEFAULT_CONFIG_PATH

    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data["conflicts"] = conflicts
    path = tmp_path / "sync_config.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("COSELL_SYNC_CONFIG", str(path))


def _conflicts(stack: Any) -> Any:
    from cosell_sync.config import load_config
    from cosell_sync.state import ConflictStore

    return ConflictStore(stack.aws("dynamodb"), load_config().storage.state_table, "AWS")


def _writes(stack: Any) -> tuple[dict[str, int], list[str]]:
    """(Partner Central write operations, HubSpot write endpoints) since the last reset."""
    pc_calls, hs_calls = stack.calls()
    pc_writes = {k: v for k, v in pc_calls["by_operation"].items() if not k.startswith(("Get", "List"))}
    hs_writes = [
        e
        for e in hs_calls["by_endpoint"]
        if not e.startswith("GET") and "batch/read" not in e and "search" not in e
    ]
    return pc_writes, hs_writes


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
def _with_status(stack: Any, ids: list[str], *statuses: str) -> list[str]:
    return [
        oid
        for oid in ids
        if stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)["LifeCycle"].get("ReviewStatus")
        in statuses
    ]


def test_resolve_manual_conflicts_each_way(sync_stack: Any, tmp_path: Any, monkeypatch: Any) -> None:
    """One book, three conflicts in one run: resolved with HubSpot's value, with PC's, and refused.

    The three cases share the setup because each reconcile run costs seconds; they are independent
    records, so one case cannot mask another.
    """
    _config_with(
        tmp_path,
        monkeypatch,
        {"default_strategy": "last_write_wins", "field_strategies": {}, "manual_resolution": ["next_steps"]},
    )
    ids = _synced_book(sync_stack)
    use_hs, use_pc = _editable(sync_stack, ids)[:2]
    # Partner Central cannot take next_steps in these review states: resolving for HubSpot must wait.
    (in_review, *_) = _with_status(sync_stack, ids, "Submitted", "In review", "Action Required", "Rejected")
    for oid in (use_hs, use_pc, in_review):
        _set_pc(sync_stack, oid, {"next_steps": f"Partner Central value {oid}"})
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
    assert _writes(sync_stack) == ({}, [])
    assert _canonical_pc(sync_stack, in_review)["next_steps"] == f"Partner Central value {in_review}"
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
        assert _canonical_pc(sync_stack, oid)["next_steps"] == winner
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
    assert _writes(sync_stack) == ({}, [])

    # 4. the next reconcile writes nothing for the resolved fields (the refused one stays frozen)
    sync_stack.run()
    pc_writes, hs_writes = _writes(sync_stack)
    assert pc_writes == {}
    assert hs_writes == []
    assert [p["opportunity_id"] for p in store.pending()] == [in_review]


# ---------------------------------------------------------------------------------------------------
# cosell_rollback
# ---------------------------------------------------------------------------------------------------
def test_rollback_dry_run_then_apply(sync_stack: Any) -> None:
    oid = _editable(sync_stack, _synced_book(sync_stack))[0]
    target = datetime.now(UTC).isoformat()
    before = _canonical_pc(sync_stack, oid)["next_steps"]
    assert before == _hs_next_steps(sync_stack, oid)
    _set_pc(sync_stack, oid, {"next_steps": "Changed in Partner Central after T"})
    sync_stack.run()
    assert _hs_next_steps(sync_stack, oid) == "Changed in Partner Central after T"
    changed = [e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_DEAL"]
    assert changed
    assert changed[0]["changes"]["next_steps"]["new"] == "Changed in Partner Central after T"

    # 1. dry run (the default): the plan names the field, nothing is written
    sync_stack.reset_calls()
    run = sync_stack.run("cosell_rollback", conf={"opportunity_id": oid, "target_timestamp": target})
    assert _writes(sync_stack) == ({}, [])
    plan = _xcom(run, "rollback")
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
    assert _canonical_pc(sync_stack, oid)["next_steps"] == before
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
    assert _writes(sync_stack) == ({}, [])


def _xcom(run: Any, task_id: str) -> dict[str, Any]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
            .filter(TaskInstance.task_id == task_id)
            .one()
        )
        return ti.xcom_pull(task_ids=task_id, session=session)
