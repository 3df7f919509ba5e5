"""The five correctness defects of the reconcile run, each as an operator would meet it (``dag.test()``).

1. a Sandbox run (connection extra or run param) never writes the AWS (production) catalog;
2. one run's artefacts live in one folder, whatever characters the run id has;
3. a write retried after ``ConflictException`` is gated on the fresh record's review status;
4. a conflict whose HubSpot task could not be created gets it on a later run;
5. nothing is submitted (or moved to Committed) without an associated partner solution.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from scenarios import canonical_pc, config_with, editable, set_hs, set_pc, synced_book

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

SOLUTION = "S-1000001"


def _opportunity_ids(stack: Any, catalog: str) -> set[str]:
    pages = stack.pc.get_paginator("list_opportunities").paginate(Catalog=catalog)
    return {s["Id"] for page in pages for s in page["OpportunitySummaries"]}


def _cosell_deals(stack: Any, count: int = 2) -> list[str]:
    seeded = stack.hs_control("seed", {"deals": count, "contacts": count, "companies": count, "seed": 5})
    for deal_id in seeded["deals"]:
        stack.update_deal(deal_id, {"aws_sync_enabled": "true"})
    return list(seeded["deals"])


def _connection_catalog(monkeypatch: Any, catalog: str) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT"])
    conn["extra"]["catalog"] = catalog
    monkeypatch.setenv("AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT", json.dumps(conn))


# 1 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["connection", "run_param"])
def test_sandbox_run_never_writes_the_aws_catalog(sync_stack: Any, monkeypatch: Any, how: str) -> None:
    """Config says AWS (the shipped default); the connection or the run says Sandbox: Sandbox it is."""
    from cosell_sync.config import load_config

    assert load_config().catalog == "AWS"
    deals = _cosell_deals(sync_stack)
    conf: dict[str, Any] = {}
    if how == "connection":
        _connection_catalog(monkeypatch, "Sandbox")
    else:
        conf = {"catalog": "Sandbox"}
    # The seeded deals name no partner solution, so their stage waits (aws_sync_error): record errors that
    # fail each run's report (report.fail_on_record_errors) after everything else is committed.
    run = sync_stack.run(conf=conf, expect="failed_at_report")

    assert _opportunity_ids(sync_stack, "AWS") == set()
    sandbox = sync_stack.pc.list_opportunities(Catalog="Sandbox", MaxResults=100)["OpportunitySummaries"]
    assert sorted(s["PartnerOpportunityIdentifier"] for s in sandbox) == sorted(deals)
    sync_stack.catalog = "Sandbox"
    report = sync_stack.report(run)
    assert report["catalog"] == "Sandbox"
    assert report["hubspot_to_partner_central"]["created"] == len(deals)
    # The deals point at the Sandbox opportunities, and a second run finds nothing to do.
    for summary in sandbox:
        assert sync_stack.deal_by_opportunity(summary["Id"])["id"] == summary["PartnerOpportunityIdentifier"]
    again = sync_stack.report(sync_stack.run(conf=conf, expect="failed_at_report"))
    assert again["hubspot_to_partner_central"]["created"] == 0
    assert _opportunity_ids(sync_stack, "AWS") == set()


# 2 -------------------------------------------------------------------------------------------------
def test_one_run_writes_its_artefacts_into_one_folder(sync_stack: Any) -> None:
    from cosell_sync.config import load_config

    synced_book(sync_stack, opportunities=3)
    cfg = load_config()
    s3 = sync_stack.aws("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=cfg.storage.bucket, Prefix=f"{cfg.storage.prefix}/runs/AWS/"
    )
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    folders = {k.split("/")[3] for k in keys}
    assert len(folders) == 1, sorted(keys)
    (run_id,) = folders
    assert ":" in run_id  # the run id as Airflow gives it, not a second spelling of it
    names = {k.rsplit("/", 1)[1] for k in keys}
    assert {"partner_central.parquet", "hubspot.parquet", "plan.json", "report.json"} <= names


# 3 -------------------------------------------------------------------------------------------------
def test_write_after_conflict_is_gated_on_the_fresh_review_status(sync_stack: Any, monkeypatch: Any) -> None:
    """AWS edits the record (our lock goes stale) and then it is submitted, before our re-read."""
    from cosell_hooks.partner_central import PartnerCentralHook

    ids = synced_book(sync_stack)
    oid = editable(sync_stack, ids)[0]
    sync_stack.pc.associate_opportunity(
        Catalog="AWS",
        OpportunityIdentifier=oid,
        RelatedEntityType="Solutions",
        RelatedEntityIdentifier=SOLUTION,
    )
    sync_stack.run()  # the association moved LastModifiedDate: sync it first
    set_hs(sync_stack, oid, {"next_steps": "Changed in HubSpot before the submission"})
    before = canonical_pc(sync_stack, oid)["next_steps"]
    real_call = PartnerCentralHook.call
    state = {"conflicted": False, "submitted": False}

    def racing_call(self: Any, operation: str, **kwargs: Any) -> Any:
        target = kwargs.get("Identifier") == oid
        if target and operation == "update_opportunity" and not state["conflicted"]:
            state["conflicted"] = True
            set_pc(sync_stack, oid, {"customer_business_problem": "Edited in the console meanwhile, by AWS"})
        elif target and operation == "get_opportunity" and state["conflicted"] and not state["submitted"]:
            state["submitted"] = True
            sync_stack.pc.submit_opportunity(Catalog="AWS", Identifier=oid, InvolvementType="Co-Sell")
        return real_call(self, operation, **kwargs)

    monkeypatch.setattr(PartnerCentralHook, "call", racing_call)
    sync_stack.reset_calls()
    report = sync_stack.report(sync_stack.run())

    assert state == {"conflicted": True, "submitted": True}
    pc_calls, _ = sync_stack.calls()
    # The stale attempt met ConflictException; the re-read showed Submitted, so nothing more was sent.
    assert pc_calls["by_operation"]["UpdateOpportunity"] == 1
    opp = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
    assert opp["LifeCycle"]["ReviewStatus"] == "Submitted"
    assert canonical_pc(sync_stack, oid)["next_steps"] == before
    assert report["hubspot_to_partner_central"]["failed"] == 0
    latest = [e for e in sync_stack.audit(oid) if e["metadata"]["runId"] == report["run_id"]]
    assert [e["action"] for e in latest] == ["DEFERRED"]
    assert latest[0]["metadata"]["reasons"] == ["REVIEW_IN_PROGRESS"]
    assert latest[0]["changes"]["next_steps"]["new"] == "Changed in HubSpot before the submission"
    assert report["queued_for_retry"] >= 1


# 4 -------------------------------------------------------------------------------------------------
def test_conflict_whose_task_failed_gets_its_task_next_run(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    from cosell_sync.config import load_config
    from cosell_sync.conflict_store import ConflictStore

    config_with(
        tmp_path,
        monkeypatch,
        {"default_strategy": "last_write_wins", "field_strategies": {}, "manual_resolution": ["next_steps"]},
    )
    conn = json.loads(os.environ["AIRFLOW_CONN_HUBSPOT_DEFAULT"])
    conn["extra"] = {**(conn.get("extra") or {}), "max_retries": 0}
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(conn))
    ids = synced_book(sync_stack)
    oid = editable(sync_stack, ids)[0]
    set_pc(sync_stack, oid, {"next_steps": "Partner Central value"})
    set_hs(sync_stack, oid, {"next_steps": "HubSpot value"})
    endpoint = "POST /crm/v3/objects/tasks/batch/create"
    # Both tries of the run fail: the first create, and the one the writer makes after reading back.
    sync_stack.hs_control("faults", {"endpoint_faults": {endpoint: {"times": 2, "when": "before"}}})
    first = sync_stack.report(sync_stack.run())
    assert first["conflicts"] == 1

    cfg = load_config()
    store = ConflictStore(sync_stack.aws("dynamodb"), cfg.storage.state_table, "AWS")
    (pending,) = store.pending(oid)
    assert not pending.get("task_id")

    sync_stack.reset_calls()
    second = sync_stack.report(sync_stack.run())
    assert second["conflicts"] == 0  # the field is frozen: the plan no longer reports it
    _, hs_calls = sync_stack.calls()
    assert hs_calls["by_endpoint"].get(endpoint) == 1
    (pending,) = store.pending(oid)
    assert pending.get("task_id")
    assert sync_stack.deal_by_opportunity(oid)["properties"]["aws_conflict_status"] == "Pending"
    # and only once: a third run creates no other task
    sync_stack.reset_calls()
    sync_stack.run()
    _, hs_calls = sync_stack.calls()
    assert endpoint not in hs_calls["by_endpoint"]


# 5 -------------------------------------------------------------------------------------------------
def test_submission_waits_for_a_solution_then_associates_it_and_submits(sync_stack: Any) -> None:
    ids = synced_book(sync_stack)
    oid = editable(sync_stack, ids)[0]
    set_hs(sync_stack, oid, {"stage": "Committed"})  # the deal enters the submit stage (contractsent)
    sync_stack.reset_calls()
    sync_stack.run(expect="failed_at_report")  # the waiting record is a record error of the run

    pc_calls, _ = sync_stack.calls()
    assert "StartEngagementFromOpportunityTask" not in pc_calls["by_operation"]
    assert "UpdateOpportunity" not in pc_calls["by_operation"]  # nothing sent bare
    opp = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
    assert opp["LifeCycle"]["ReviewStatus"] == "Pending Submission"
    assert opp["LifeCycle"]["Stage"] != "Committed"
    deal = sync_stack.deal_by_opportunity(oid, ["aws_sync_error", "aws_solution_ids"])
    assert "aws_solution_ids" in deal["properties"]["aws_sync_error"]
    assert "SOLUTION_REQUIRED" in deal["properties"]["aws_sync_error"]

    # The seller names the solution; the next run associates it, moves the stage and submits.
    sync_stack.update_deal(deal["id"], {"aws_solution_ids": SOLUTION})
    sync_stack.reset_calls()
    report = sync_stack.report(sync_stack.run())
    pc_calls, _ = sync_stack.calls()
    assert pc_calls["by_operation"]["AssociateOpportunity"] == 1
    assert pc_calls["by_operation"]["StartEngagementFromOpportunityTask"] == 1
    assert report["hubspot_to_partner_central"]["submitted"] == 1
    opp = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
    assert opp["RelatedEntityIdentifiers"]["Solutions"] == [SOLUTION]
    assert opp["LifeCycle"]["Stage"] == "Committed"
    sync_stack.pc_control("clock", {"advance_seconds": 60})
    task = sync_stack.pc.list_engagement_from_opportunity_tasks(Catalog="AWS", OpportunityIdentifier=[oid])
    assert [t["TaskStatus"] for t in task["TaskSummaries"]] == ["COMPLETE"]
    deal = sync_stack.deal_by_opportunity(oid, ["aws_sync_error"])
    assert not deal["properties"]["aws_sync_error"]
