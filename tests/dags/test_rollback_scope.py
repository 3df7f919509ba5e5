"""``cosell_rollback`` by deal and by sync run, one-sided rollbacks, the dry-run diff, automatic rollback.

End to end against both emulators and moto (``dag.test``), as a user triggers the DAGs.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from scenarios import canonical_pc, editable, set_hs, set_pc, synced_book, xcom

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

HEADERS = {"Authorization": "Bearer test-token"}


def _hs_next_steps(stack: Any, oid: str) -> str | None:
    return stack.deal_by_opportunity(oid)["properties"].get("aws_next_steps") or None


def _writes(stack: Any) -> tuple[dict[str, int], list[str]]:
    """(Partner Central write operations, HubSpot write endpoints) since the last reset."""
    pc_calls, hs_calls = stack.calls()
    pc = {k: v for k, v in pc_calls["by_operation"].items() if not k.startswith(("Get", "List", "Search"))}
    hs = [
        e
        for e in hs_calls["by_endpoint"]
        if not e.startswith("GET") and "batch/read" not in e and "search" not in e
    ]
    return pc, hs


def _rollback(stack: Any, **conf: Any) -> Any:
    """One ``cosell_rollback`` run with this conf (it must succeed)."""
    return stack.run("cosell_rollback", conf=conf)


def _associated(stack: Any, deal_id: str, plural: str, prop: str) -> list[dict[str, Any]]:
    r = requests.get(
        f"{stack.hs_url}/crm/v4/objects/deals/{deal_id}/associations/{plural}", headers=HEADERS, timeout=30
    )
    ids = [str(x["toObjectId"]) for x in r.json().get("results") or []]
    if not ids:
        return []
    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/{plural}/batch/read",
        headers=HEADERS,
        json={"inputs": [{"id": i} for i in ids], "properties": [prop, "hubspot_owner_id"]},
        timeout=30,
    )
    return [n["properties"] for n in r.json()["results"]]


def _past() -> str:
    # The target instant, a moment after the values to restore were synced.
    return datetime.now(UTC).isoformat()


# ---------------------------------------------------------------------------------------------------
def test_rollback_by_deal_id_restores_the_linked_opportunity(sync_stack: Any) -> None:
    oid = editable(sync_stack, synced_book(sync_stack, opportunities=3))[0]
    before = canonical_pc(sync_stack, oid)["next_steps"]
    target = _past()
    set_pc(sync_stack, oid, {"next_steps": "Changed in Partner Central after T"})
    sync_stack.run()
    deal_id = sync_stack.deal_by_opportunity(oid)["id"]

    run = _rollback(sync_stack, deal_id=deal_id, target_timestamp=target, dry_run=False)

    result = xcom(run, "rollback")
    assert (result["opportunity_id"], result["deal_id"]) == (oid, deal_id)
    assert canonical_pc(sync_stack, oid)["next_steps"] == before
    assert _hs_next_steps(sync_stack, oid) == before
    assert {e["direction"] for e in sync_stack.audit(oid) if e["action"] == "ROLLBACK"} == {
        "hubspot_to_partner_central",
        "partner_central_to_hubspot",
    }


def test_rollback_by_run_id_restores_every_record_that_run_changed_and_nothing_else(sync_stack: Any) -> None:
    ids = synced_book(sync_stack, opportunities=12)
    a, b, c = editable(sync_stack, ids)[:3]
    before = {oid: canonical_pc(sync_stack, oid) for oid in (a, b, c)}
    # The run to undo: a Partner Central edit of a (to HubSpot) and a HubSpot edit of b (to Partner Central).
    set_pc(sync_stack, a, {"next_steps": "Run one changed a"})
    set_hs(sync_stack, b, {"next_steps": "Run one changed b"})
    undone = sync_stack.run()
    assert canonical_pc(sync_stack, b)["next_steps"] == "Run one changed b"
    assert _hs_next_steps(sync_stack, a) == "Run one changed a"
    # A later run changes c, and a's project title: not that run's doing, so left alone.
    set_pc(sync_stack, c, {"next_steps": "A later run changed c"})
    set_pc(sync_stack, a, {"project_title": "A later title of a"})
    sync_stack.run()

    # dry run: the plan covers a and b (the fields that run changed), writes nothing
    sync_stack.reset_calls()
    run = _rollback(sync_stack, run_id=undone.run_id)
    assert _writes(sync_stack) == ({}, [])
    plan = xcom(run, "rollback")
    assert sorted(plan["records"]) == sorted([a, b])
    for oid in (a, b):
        rows = {p["field"]: p for p in plan["records"][oid]["plan"]}
        assert list(rows) == ["next_steps"]
        assert rows["next_steps"]["target"] == before[oid]["next_steps"]

    _rollback(sync_stack, run_id=undone.run_id, dry_run=False)

    for oid in (a, b):
        assert canonical_pc(sync_stack, oid)["next_steps"] == before[oid]["next_steps"]
        assert _hs_next_steps(sync_stack, oid) == before[oid]["next_steps"]
        entries = [e for e in sync_stack.audit(oid) if e["action"] == "ROLLBACK"]
        assert entries
        assert all(e["metadata"]["rolledBackRun"] == undone.run_id for e in entries)
    assert canonical_pc(sync_stack, a)["project_title"] == "A later title of a"
    assert canonical_pc(sync_stack, c)["next_steps"] == "A later run changed c"
    assert _hs_next_steps(sync_stack, c) == "A later run changed c"
    assert not [e for e in sync_stack.audit(c) if e["action"] == "ROLLBACK"]
    # both sides agree and the baseline says so: the next reconcile has nothing to write
    sync_stack.reset_calls()
    sync_stack.run()
    assert _writes(sync_stack)[0] == {}


def test_a_field_changed_again_after_the_run_is_not_overwritten(sync_stack: Any) -> None:
    oid = editable(sync_stack, synced_book(sync_stack, opportunities=3))[0]
    set_pc(sync_stack, oid, {"next_steps": "Run one wrote this"})
    undone = sync_stack.run()
    set_hs(sync_stack, oid, {"next_steps": "A person wrote this later"})
    sync_stack.run()

    run = _rollback(sync_stack, run_id=undone.run_id, dry_run=False)

    reason = xcom(run, "rollback")["records"][oid]["skipped"]["next_steps"]
    assert reason.startswith("CHANGED_SINCE_RUN")
    assert canonical_pc(sync_stack, oid)["next_steps"] == "A person wrote this later"


def test_a_hubspot_only_rollback_writes_only_hubspot_and_the_next_reconcile_carries_it_over(
    sync_stack: Any,
) -> None:
    oid = editable(sync_stack, synced_book(sync_stack, opportunities=3))[0]
    before = canonical_pc(sync_stack, oid)["next_steps"]
    target = _past()
    set_pc(sync_stack, oid, {"next_steps": "Changed in Partner Central after T"})
    sync_stack.run()

    sync_stack.reset_calls()
    _rollback(sync_stack, opportunity_id=oid, target_timestamp=target, systems="hubspot", dry_run=False)

    pc_writes, hs_writes = _writes(sync_stack)
    assert pc_writes == {}
    assert hs_writes
    assert _hs_next_steps(sync_stack, oid) == before
    assert canonical_pc(sync_stack, oid)["next_steps"] == "Changed in Partner Central after T"
    entries = [e for e in sync_stack.audit(oid) if e["action"] == "ROLLBACK"]
    assert [e["direction"] for e in entries] == ["partner_central_to_hubspot"]
    assert entries[0]["metadata"]["systems"] == "hubspot"

    # The next reconcile sees HubSpot changed since the last sync and takes it to Partner Central.
    sync_stack.run()
    assert canonical_pc(sync_stack, oid)["next_steps"] == before
    assert _hs_next_steps(sync_stack, oid) == before
    sync_stack.reset_calls()
    sync_stack.run()
    assert _writes(sync_stack)[0] == {}


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        (
            {"target_timestamp": "2026-01-01T00:00:00Z"},
            "give exactly one of opportunity_id, deal_id or run_id",
        ),
        (
            {"opportunity_id": "O1", "deal_id": "123", "target_timestamp": "2026-01-01T00:00:00Z"},
            "(got opportunity_id, deal_id)",
        ),
        ({"run_id": "manual__x", "target_timestamp": "2026-01-01T00:00:00Z"}, "does not apply with run_id"),
        ({"deal_id": "123"}, "target_timestamp is required with deal_id"),
    ],
    ids=["none", "two", "run_id_with_target", "no_target"],
)
def test_none_or_two_ids_fail_at_once(
    sync_stack: Any, capfd: Any, conf: dict[str, Any], message: str
) -> None:
    dag = sync_stack.dag("cosell_rollback")
    task = dag.get_task("rollback")
    task.retries, task.retry_delay = 1, timedelta(0)
    capfd.readouterr()

    run = dag.test(run_conf=conf)

    ti = next(t for t in run.get_task_instances() if t.task_id == "rollback")
    assert (str(getattr(ti.state, "value", ti.state)), ti.try_number) == ("failed", 1)
    out = capfd.readouterr()
    assert message in out.out + out.err


def test_the_dry_run_shows_a_diff_for_a_long_value(sync_stack: Any, caplog: pytest.LogCaptureFixture) -> None:
    oid = editable(sync_stack, synced_book(sync_stack, opportunities=3))[0]
    old = "Run a proof of concept with the data platform team in March, then a pricing review with finance"
    set_pc(sync_stack, oid, {"next_steps": old})
    sync_stack.run()
    target = _past()
    set_pc(sync_stack, oid, {"next_steps": old.replace("March", "April")})
    sync_stack.run()
    caplog.clear()

    with caplog.at_level(logging.INFO, logger="cosell_sync.rollback"):
        _rollback(sync_stack, opportunity_id=oid, target_timestamp=target)

    logs = caplog.text
    line = next(x for x in logs.splitlines() if x.startswith("next_steps") and "diff below" in x)
    assert f"<{len(old)} chars: diff below>" in line
    assert "..." not in line
    assert "Partner Central: ...(42 unchanged)...orm team in [-April,-]{+March,+} then a pric" in logs
    assert "HubSpot: same as Partner Central" in logs


def test_a_rejected_partner_central_write_reverts_the_records_hubspot_side(sync_stack: Any) -> None:
    oid = editable(sync_stack, synced_book(sync_stack, opportunities=3))[0]
    before = canonical_pc(sync_stack, oid)["next_steps"]
    deal_id = sync_stack.deal_by_opportunity(oid)["id"]
    # One run, both ways: Partner Central changed next_steps (to HubSpot), the seller typed an amount
    # Partner Central cannot take (to Partner Central: rejected).
    set_pc(sync_stack, oid, {"next_steps": "Partner Central changed this"})
    sync_stack.update_deal(deal_id, {"amount": "-500"})

    run = sync_stack.run(expect="failed_at_report")

    assert sync_stack.report(run)["partner_central_to_hubspot"]["auto_reverted"] == 1
    assert _hs_next_steps(sync_stack, oid) == before
    assert sync_stack.deal_by_opportunity(oid)["properties"].get("aws_sync_error")
    notes = [n["hs_note_body"] or "" for n in _associated(sync_stack, deal_id, "notes", "hs_note_body")]
    assert any("Sync failed, changes reverted" in n and "aws_next_steps" in n for n in notes)
    tasks = [t["hs_task_body"] or "" for t in _associated(sync_stack, deal_id, "tasks", "hs_task_body")]
    assert [t for t in tasks if f"auto-rollback:{oid}:{run.run_id}" in t]
    entries = [e for e in sync_stack.audit(oid) if e["action"] == "AUTO_ROLLBACK"]
    assert len(entries) == 1
    assert entries[0]["changes"] == {"next_steps": {"old": before, "new": "Partner Central changed this"}}
    assert entries[0]["metadata"]["runId"] == run.run_id
    assert not [
        e
        for e in sync_stack.audit(oid)
        if e["action"] == "UPDATE_DEAL" and e["metadata"]["runId"] == run.run_id
    ]

    # Once the seller fixes the amount, the next run writes both sides.
    sync_stack.update_deal(deal_id, {"amount": "1000"})
    sync_stack.run()
    assert _hs_next_steps(sync_stack, oid) == "Partner Central changed this"
    assert float(canonical_pc(sync_stack, oid)["expected_spend_amount"]) == 1000
