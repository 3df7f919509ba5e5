"""Nothing duplicated (issue "nothing lost, nothing duplicated", items 4, 6 and 7).

- A HubSpot create is never resent blindly after a 5xx or a timeout (HubSpot may have applied it):
  the writer reads back and creates only what is missing; companies and contacts are upserts.
- A write whose run died before its commit is still audited (the write journal).
- A create interrupted before its link is found and linked by the next run, whatever happened to the
  deal in between, and never produces a second record on either side.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import requests

from tests.dags.scenarios import (
    canonical_hs,
    canonical_pc,
    editable,
    hubspot_total,
    run_notes,
    set_hs,
    set_pc,
    synced_book,
    xcom,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

HEADERS = {"Authorization": "Bearer test-token"}


def _opportunities(stack: Any) -> list[dict[str, Any]]:
    pages = stack.pc.get_paginator("list_opportunities").paginate(Catalog="AWS")
    return [s for page in pages for s in page["OpportunitySummaries"]]


def _no_hubspot_retries(monkeypatch: Any) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_HUBSPOT_DEFAULT"])
    conn["extra"] = {**(conn.get("extra") or {}), "max_retries": 0}
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(conn))


def _cosell_deals(stack: Any, count: int) -> list[str]:
    seeded = stack.hs_control("seed", {"deals": count, "contacts": count, "companies": count, "seed": 9})
    for deal_id in seeded["deals"]:
        stack.update_deal(deal_id, {"aws_sync_enabled": "true"})
    return list(seeded["deals"])


# 6 -------------------------------------------------------------------------------------------------
def test_a_hubspot_create_answered_with_a_5xx_is_not_resent(hubspot_emulator: Any, monkeypatch: Any) -> None:
    """The hook resends an update after a 502, never a create: the create may have been applied."""
    from cosell_hooks.hubspot import HubSpotHook
    from cosell_sync.errors import ServiceUnavailableError
    from cosell_sync.hubspot_api import HubSpotGateway

    monkeypatch.setenv(
        "AIRFLOW_CONN_HUBSPOT_DEFAULT",
        json.dumps(
            {
                "conn_type": "hubspot",
                "password": "test-token",
                "host": hubspot_emulator.url,
                "extra": {"max_retries": 3, "backoff_factor": 0.01},
            }
        ),
    )
    url = hubspot_emulator.url
    seeded = requests.post(f"{url}/_emulator/seed", json={"deals": 1, "seed": 3}, timeout=30).json()
    create, update = "POST /crm/v3/objects/notes/batch/create", "POST /crm/v3/objects/deals/batch/update"
    faults = {create: {"times": 1, "when": "after", "status": 502}, update: {"times": 1, "status": 502}}
    requests.post(f"{url}/_emulator/faults", json={"endpoint_faults": faults}, timeout=30)
    requests.delete(f"{url}/_emulator/calls", timeout=30)
    gw = HubSpotGateway(HubSpotHook("hubspot_default"))

    with pytest.raises(ServiceUnavailableError):
        gw.batch_create("notes", [{"properties": {"hs_note_body": "x", "hs_timestamp": "1700000000000"}}])
    gw.batch_update("deals", {seeded["deals"][0]: {"description": "resent after a 502"}})

    calls = requests.get(f"{url}/_emulator/calls", timeout=30).json()["by_endpoint"]
    assert calls[create] == 1  # applied once, answered 502, not resent
    assert calls[update] == 2  # refused once, resent
    assert _total_at(url, "notes") == 1


def _total_at(url: str, plural: str) -> int:
    r = requests.post(f"{url}/crm/v3/objects/{plural}/search", headers=HEADERS, json={"limit": 1}, timeout=30)
    r.raise_for_status()
    return int(r.json()["total"])


def _retry_task(stack: Any, run: Any, task: str) -> dict[str, Any]:
    """Run one task of a finished run again, as Airflow's retry (or a cleared task) would."""
    from cosell_runtime import tasks
    from cosell_sync.storage import run_key

    run_desc = {
        "run_id": run.run_id,
        "catalog": "AWS",
        "dry_run": False,
        "direction": "both",
        "started_at": None,
    }
    planned = {"key": run_key("AWS", run.run_id, "plan.json")}
    pc_applied = {"key": run_key("AWS", run.run_id, "apply_partner_central.json")}
    assert task == "apply_hubspot"
    try:
        return tasks.reconcile_apply_hubspot(run_desc, planned, pc_applied)
    finally:
        # The retried task holds the run's lease; the run's commit would give it up: do that here.
        from cosell_runtime.env import build_lease

        build_lease("AWS").release(run.run_id)


def test_new_deals_get_one_company_each_though_the_create_answered_5xx_and_the_task_was_retried(
    sync_stack: Any, monkeypatch: Any
) -> None:
    """Initial load of 8 opportunities: the companies' write answers 504 after HubSpot applied it, the
    task fails and is retried. Still one deal and one company per opportunity."""
    _no_hubspot_retries(monkeypatch)
    ids = sync_stack.pc_control("seed", {"opportunities": 8, "seed": 21, "catalog": "AWS"})["opportunity_ids"]
    companies_before = hubspot_total(sync_stack, "companies")
    applied_then_failed = {"times": 1, "when": "after", "status": 504}
    sync_stack.hs_control(
        "faults",
        {
            "endpoint_faults": {
                "POST /crm/v3/objects/companies/batch/upsert": applied_then_failed,
                "POST /crm/v3/objects/companies/batch/create": applied_then_failed,
            }
        },
    )
    failed = sync_stack.run(expect="failed")  # apply_hubspot failed after HubSpot applied the companies
    assert hubspot_total(sync_stack, "companies") - companies_before == len(ids)
    _retry_task(sync_stack, failed, "apply_hubspot")

    for oid in ids:
        sync_stack.deal_by_opportunity(oid)  # exactly one deal each
    assert hubspot_total(sync_stack, "companies") - companies_before == len(ids)
    sync_stack.run()
    assert hubspot_total(sync_stack, "companies") - companies_before == len(ids)

    # A PC-side edit to 3 records: one note per deal, although the notes create answered 502.
    for oid in ids[:3]:
        set_pc(sync_stack, oid, {"next_steps": f"Edited in Partner Central {oid}"})
    notes_before = hubspot_total(sync_stack, "notes")
    fault = {"times": 1, "when": "after", "status": 502}
    sync_stack.hs_control("faults", {"endpoint_faults": {"POST /crm/v3/objects/notes/batch/create": fault}})
    sync_stack.run()
    assert hubspot_total(sync_stack, "notes") - notes_before == 3
    assert len(_opportunities(sync_stack)) == len(ids)


# 4 -------------------------------------------------------------------------------------------------
def test_a_write_is_audited_though_its_run_died_before_commit(sync_stack: Any, monkeypatch: Any) -> None:
    _no_hubspot_retries(monkeypatch)
    ids = synced_book(sync_stack, opportunities=4)
    oid, other = editable(sync_stack, ids)[:2]
    before = canonical_pc(sync_stack, oid)["next_steps"]
    set_hs(sync_stack, oid, {"next_steps": "Written before the run died"})
    set_pc(sync_stack, other, {"next_steps": "Makes apply_hubspot write"})
    # apply_hubspot dies after the Partner Central write (HubSpot is down for the whole task).
    sync_stack.hs_control(
        "faults", {"endpoint_faults": {"POST /crm/v3/objects/deals/batch/update": {"times": 5}}}
    )
    failed = sync_stack.run(expect="failed")
    assert canonical_pc(sync_stack, oid)["next_steps"] == "Written before the run died"
    assert not [e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_OPPORTUNITY"]

    sync_stack.hs_control("faults", {"endpoint_faults": {}})
    _audited_once_by_the_next_runs(
        sync_stack, oid, "UPDATE_OPPORTUNITY", "Written before the run died", failed
    )
    # The write the dead run could not make is not lost: a later run made it, once, and audited it.
    assert canonical_hs(sync_stack, other)["next_steps"] == "Makes apply_hubspot write"
    assert len([e for e in sync_stack.audit(other) if e["action"] == "UPDATE_DEAL"]) == 1
    assert not [i for i in sync_stack.retry_items() if i.get("opportunity_id") == other]

    # A rollback by the dead run's id undoes its Partner Central write (audited later, under its id).
    undo = sync_stack.run("cosell_rollback", conf={"run_id": failed.run_id, "dry_run": False})
    assert list(xcom(undo, "rollback")["records"]) == [oid]
    assert canonical_pc(sync_stack, oid)["next_steps"] == before
    assert canonical_hs(sync_stack, oid)["next_steps"] == before


def _audited_once_by_the_next_runs(stack: Any, oid: str, action: str, value: str, dead: Any) -> None:
    """The next run audits the dead run's write of ``value`` (``action``) under its id; a third: nothing."""
    stack.run()
    entries = [e for e in stack.audit(oid) if e["action"] == action]
    assert len(entries) == 1
    (entry,) = entries
    assert entry["success"] is True
    assert entry["changes"]["next_steps"]["new"] == value
    assert entry["metadata"]["runId"] == dead.run_id  # audited under the run that wrote it
    # Settled: nothing of the record waits for a retry (the dead run's commit queued nothing either).
    assert not [i for i in stack.retry_items() if i.get("opportunity_id") == oid]
    stack.run()
    assert len([e for e in stack.audit(oid) if e["action"] == action]) == 1


def _dies(message: str) -> Any:
    """A replacement for a step's function that raises: the worker lost at that point."""

    def dies(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(message)

    return dies


# 7 -------------------------------------------------------------------------------------------------
def test_an_interrupted_create_is_linked_next_run_even_after_the_deal_was_edited(
    sync_stack: Any, monkeypatch: Any
) -> None:
    """Opportunities created for 3 co-sell deals; HubSpot fails before the links; a seller edits 2."""
    _no_hubspot_retries(monkeypatch)
    deals = _cosell_deals(sync_stack, 3)
    companies_before = hubspot_total(sync_stack, "companies")
    deals_before = hubspot_total(sync_stack, "deals")
    sync_stack.hs_control(
        "faults", {"endpoint_faults": {"POST /crm/v3/objects/deals/batch/update": {"times": 5}}}
    )
    sync_stack.run(expect="failed")
    assert len(_opportunities(sync_stack)) == 3  # created, not linked
    sync_stack.hs_control("faults", {"endpoint_faults": {}})
    for deal_id in deals[:2]:
        sync_stack.update_deal(deal_id, {"description": f"Seller edit on {deal_id}"})

    first = sync_stack.report(sync_stack.run())
    sync_stack.run()  # and one more: nothing new appears

    opportunities = _opportunities(sync_stack)
    assert len(opportunities) == 3
    assert sorted(o["PartnerOpportunityIdentifier"] for o in opportunities) == sorted(deals)
    assert hubspot_total(sync_stack, "deals") == deals_before
    assert hubspot_total(sync_stack, "companies") == companies_before
    for summary in opportunities:
        deal = sync_stack.deal_by_opportunity(summary["Id"])
        assert deal["id"] == summary["PartnerOpportunityIdentifier"]
        assert not deal["properties"].get("aws_sync_error")
    assert first["hubspot_to_partner_central"]["failed"] == 0
    # The sellers' edits reached Partner Central.
    for summary in opportunities:
        if summary["PartnerOpportunityIdentifier"] in deals[:2]:
            problem = canonical_pc(sync_stack, summary["Id"])["customer_business_problem"]
            assert problem.startswith("Seller edit on")


# 4b ------------------------------------------------------------------------------------------------
def test_hubspot_writes_of_a_run_that_died_at_commit_are_audited_once_by_the_next_run(
    sync_stack: Any, monkeypatch: Any
) -> None:
    import cosell_sync.commit

    ids = synced_book(sync_stack, opportunities=4)
    oid = editable(sync_stack, ids)[0]
    before = canonical_hs(sync_stack, oid)["next_steps"]
    set_pc(sync_stack, oid, {"next_steps": "Edited in the console"})
    with monkeypatch.context() as mp:
        mp.setattr(cosell_sync.commit, "write_commit", _dies("worker lost during commit"))
        failed = sync_stack.run(expect="failed")
    # HubSpot holds the value, and no audit entry says so yet.
    assert canonical_hs(sync_stack, oid)["next_steps"] == "Edited in the console"
    assert not [e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_DEAL"]

    _audited_once_by_the_next_runs(sync_stack, oid, "UPDATE_DEAL", "Edited in the console", failed)

    # The dead run is rolled back by its id: its write, audited by a later run, is in its change set.
    undo = sync_stack.run("cosell_rollback", conf={"run_id": failed.run_id, "dry_run": False})
    assert list(xcom(undo, "rollback")["records"]) == [oid]
    assert canonical_hs(sync_stack, oid)["next_steps"] == before
    assert canonical_pc(sync_stack, oid)["next_steps"] == before


# 4c ------------------------------------------------------------------------------------------------
def test_deals_created_by_a_load_that_died_mid_apply_are_audited_once_and_not_created_again(
    sync_stack: Any, monkeypatch: Any
) -> None:
    from cosell_sync.writers.hubspot import HubSpotWriter

    ids = sync_stack.pc_control("seed", {"opportunities": 3, "seed": 11, "catalog": "AWS"})["opportunity_ids"]
    with monkeypatch.context() as mp:
        # apply_hubspot dies after its creates, before it stores its results: the journal holds its intent.
        mp.setattr(HubSpotWriter, "write_notes", _dies("worker lost after the deals were created"))
        failed = sync_stack.run(expect="failed")
    assert hubspot_total(sync_stack, "deals") == 3
    assert not [e for oid in ids for e in sync_stack.audit(oid) if e["action"] == "CREATE_DEAL"]

    second = sync_stack.run()
    assert hubspot_total(sync_stack, "deals") == 3
    for oid in ids:
        creates = [e for e in sync_stack.audit(oid) if e["action"] == "CREATE_DEAL"]
        assert len(creates) == 1, oid
        (entry,) = creates
        assert entry["success"] is True
        assert entry["metadata"]["dealId"] == sync_stack.deal_by_opportunity(oid)["id"]
        assert entry["metadata"]["runId"] == failed.run_id
        assert entry["metadata"]["journalStatus"] == "INTENT"
        assert entry["metadata"]["auditedByRun"] == second.run_id
    assert not [i for i in sync_stack.retry_items() if i.get("opportunity_id") in ids]
    sync_stack.run()
    assert sum(len([e for e in sync_stack.audit(oid) if e["action"] == "CREATE_DEAL"]) for oid in ids) == 3


# 4d ------------------------------------------------------------------------------------------------
def test_a_dead_runs_deal_update_a_person_changed_again_is_audited_from_hubspots_history(
    sync_stack: Any, monkeypatch: Any
) -> None:
    """``apply_hubspot`` dies after its deal updates; a person edits the same field before the next run.

    HubSpot no longer holds the dead run's value, only its history does: the next run audits the dead
    run's write from there (once), and the person's edit is handled like any edit.
    """
    from cosell_sync.writers.hubspot import HubSpotWriter

    ids = synced_book(sync_stack, opportunities=4)
    oid = editable(sync_stack, ids)[0]
    set_pc(sync_stack, oid, {"next_steps": "Edited in the console"})
    with monkeypatch.context() as mp:
        mp.setattr(HubSpotWriter, "write_notes", _dies("worker lost after the deal updates"))
        failed = sync_stack.run(expect="failed")
    assert canonical_hs(sync_stack, oid)["next_steps"] == "Edited in the console"
    set_hs(sync_stack, oid, {"next_steps": "A person's newer text"})

    second = sync_stack.run()
    updates = [e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_DEAL"]
    dead = [e for e in updates if e["metadata"]["runId"] == failed.run_id]
    assert len(dead) == 1, updates
    assert dead[0]["success"] is True
    assert dead[0]["changes"]["next_steps"]["new"] == "Edited in the console"
    assert dead[0]["metadata"]["journalStatus"] == "INTENT"
    assert dead[0]["metadata"]["auditedByRun"] == second.run_id
    sync_stack.run()
    again = [e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_DEAL"]
    assert len([e for e in again if e["metadata"]["runId"] == failed.run_id]) == 1


# 4e ------------------------------------------------------------------------------------------------
def test_the_note_a_dead_run_owed_is_written_once_by_the_next_run(sync_stack: Any, monkeypatch: Any) -> None:
    """``apply_hubspot`` dies after its deal update, before the deal's note.

    The next run audits the update under the dead run and owes the note: HubSpot refuses it, and that
    run still succeeds. The run after writes it, under the dead run's reference (judging the dead write
    from HubSpot's history, since it no longer reads the record); a fourth run writes no second one.
    """
    from cosell_sync.config import load_config
    from cosell_sync.writers.hubspot import HubSpotWriter

    _no_hubspot_retries(monkeypatch)
    ids = synced_book(sync_stack, opportunities=4)
    oid = editable(sync_stack, ids)[0]
    deal_id = str(sync_stack.deal_by_opportunity(oid)["id"])
    set_pc(sync_stack, oid, {"next_steps": "Edited in the console"})
    with monkeypatch.context() as mp:
        mp.setattr(HubSpotWriter, "write_notes", _dies("worker lost after the deal updates"))
        failed = sync_stack.run(expect="failed")
    assert canonical_hs(sync_stack, oid)["next_steps"] == "Edited in the console"
    assert run_notes(sync_stack, deal_id, failed.run_id) == []

    notes_before = hubspot_total(sync_stack, "notes")
    refused = {"times": 10, "status": 500}
    sync_stack.hs_control("faults", {"endpoint_faults": {"POST /crm/v3/objects/notes/batch/create": refused}})
    sync_stack.run()  # succeeds: a refused note does not fail the commit
    assert run_notes(sync_stack, deal_id, failed.run_id) == []
    assert len([e for e in sync_stack.audit(oid) if e["metadata"]["runId"] == failed.run_id]) == 1

    sync_stack.hs_control("faults", {"endpoint_faults": {}})
    sync_stack.run()
    (note,) = run_notes(sync_stack, deal_id, failed.run_id)
    assert load_config().field("next_steps").hubspot in note  # the property the dead run wrote
    assert "Edited in the console" not in note  # values never go in a note
    # Only the owed note: the record converged, so the later runs wrote nothing of their own to it.
    assert hubspot_total(sync_stack, "notes") - notes_before == 1
    assert len([e for e in sync_stack.audit(oid) if e["metadata"]["runId"] == failed.run_id]) == 1
    sync_stack.run()
    assert len(run_notes(sync_stack, deal_id, failed.run_id)) == 1
    assert hubspot_total(sync_stack, "notes") - notes_before == 1
