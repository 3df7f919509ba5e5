"""Bulk creates and SearchOpportunities in the reconcile run, as an operator meets them (``dag.test()``).

* a run with more creates than ``bulk.min_records`` sends them as one bulk job, waited for by a deferred
  task, and links every deal to its own opportunity;
* an account without bulk jobs (or without search) falls back by itself;
* a crash after the job started (before or after its id was recorded), then a re-run: every deal is
  linked, no opportunity is made twice;
* a deal whose link was cleared in HubSpot is linked again to its opportunity, never given a second one;
* AWS insights reach the deal, and an unchanged book writes nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

DEALS = 6


def _config(tmp_path: Any, monkeypatch: Any, **bulk: Any) -> None:
    """The shipped config with a small bulk threshold and a fast poll (the job takes seconds here)."""
    from cosell_sync.schedule import DEFAULT_CONFIG_PATH

    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data["bulk"] = {**data.get("bulk", {}), "min_records": 3, "poll_seconds": 0.2, **bulk}
    # Co-sell deals name their solution, as a partner's would: creates at Committed can then move there.
    data.setdefault("submission", {})["default_solution_ids"] = ["S-1000001"]
    path = tmp_path / "sync_config.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("COSELL_SYNC_CONFIG", str(path))


def _cosell_deals(stack: Any, count: int = DEALS) -> list[str]:
    seeded = stack.hs_control("seed", {"deals": count, "contacts": count, "companies": count, "seed": 9})
    for deal_id in seeded["deals"]:
        stack.update_deal(deal_id, {"aws_sync_enabled": "true"})
    return [str(d) for d in seeded["deals"]]


def _opportunities(stack: Any) -> list[dict[str, Any]]:
    """Every opportunity of the AWS catalog (ListOpportunities summaries)."""
    pages = stack.pc.get_paginator("list_opportunities").paginate(Catalog="AWS")
    return [s for page in pages for s in page["OpportunitySummaries"]]


def _partner_ids(stack: Any) -> Counter[str]:
    return Counter(str(o.get("PartnerOpportunityIdentifier")) for o in _opportunities(stack))


def _links(stack: Any, deal_ids: list[str]) -> dict[str, str]:
    import requests

    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/deals/batch/read",
        headers={"Authorization": "Bearer test-token"},
        json={
            "inputs": [{"id": d} for d in deal_ids],
            "properties": ["aws_opportunity_id", "aws_sync_error"],
        },
        timeout=30,
    )
    r.raise_for_status()
    return {str(d["id"]): d["properties"].get("aws_opportunity_id") or "" for d in r.json()["results"]}


def _calls(stack: Any) -> dict[str, int]:
    return stack.calls()[0]["by_operation"]


def _assert_each_deal_has_one_opportunity(stack: Any, deals: list[str]) -> None:
    per_deal = _partner_ids(stack)
    assert {d: per_deal[d] for d in deals} == dict.fromkeys(deals, 1)
    links = _links(stack, deals)
    by_partner_id = {str(o["PartnerOpportunityIdentifier"]): o["Id"] for o in _opportunities(stack)}
    assert links == {d: by_partner_id[d] for d in deals}


def test_many_creates_go_as_one_bulk_job_and_every_deal_is_linked(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    _config(tmp_path, monkeypatch)
    deals = _cosell_deals(sync_stack)
    sync_stack.reset_calls()
    run = sync_stack.run()
    calls = _calls(sync_stack)
    assert calls.get("StartOpportunityBulkJob") == 1
    assert calls.get("CreateOpportunity", 0) == 0
    _assert_each_deal_has_one_opportunity(sync_stack, deals)
    report = sync_stack.report(run)
    assert report["hubspot_to_partner_central"]["created"] == DEALS
    # The audit has one create per deal, from the bulk job's per-record results.
    entries = [e for oid in _links(sync_stack, deals).values() for e in sync_stack.audit(oid)]
    assert Counter(e["action"] for e in entries)["CREATE_OPPORTUNITY"] == DEALS
    # A second run creates nothing and starts no job.
    sync_stack.reset_calls()
    sync_stack.run()
    assert _calls(sync_stack).get("StartOpportunityBulkJob", 0) == 0
    _assert_each_deal_has_one_opportunity(sync_stack, deals)


def test_account_without_bulk_jobs_falls_back_to_single_creates(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any, caplog: Any
) -> None:
    _config(tmp_path, monkeypatch)
    sync_stack.pc_control("config", {"bulk_jobs_enabled": False})
    deals = _cosell_deals(sync_stack)
    sync_stack.reset_calls()
    with caplog.at_level("WARNING"):
        run = sync_stack.run()
    calls = _calls(sync_stack)
    assert calls.get("StartOpportunityBulkJob") == 1  # asked once, refused
    assert calls.get("CreateOpportunity") == DEALS
    # The deals' owners were read once, for the job; the single creates reuse those teams (the apply
    # step's calls include the prepare step's).
    assert sync_stack.artefact(run, "creates.json")["api_calls"].get("owners") == 1
    assert sync_stack.artefact(run, "apply_partner_central.json")["api_calls"].get("owners") == 1
    _assert_each_deal_has_one_opportunity(sync_stack, deals)
    said = [r for r in caplog.records if "bulk jobs are not enabled" in r.getMessage()]
    assert len(said) == 1


@pytest.mark.parametrize("crash", ["before_job_id_recorded", "while_waiting"])
def test_crash_during_a_bulk_job_then_rerun_never_duplicates(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any, crash: str
) -> None:
    from cosell_sync import creates, journal

    _config(tmp_path, monkeypatch)
    # Slow processing: the crash happens while AWS is still working on the job.
    sync_stack.pc_control("config", {"bulk_records_per_second": 2})
    deals = _cosell_deals(sync_stack)
    with pytest.MonkeyPatch.context() as mp:
        if crash == "before_job_id_recorded":
            real_finish = journal.WriteJournal.finish

            def die_after_start(self: Any, key: str, status: str, outcome: Any = None) -> None:
                if "#BULK_CREATE_JOB#" in key:
                    raise SystemExit("worker killed right after StartOpportunityBulkJob")
                real_finish(self, key, status, outcome)

            mp.setattr(journal.WriteJournal, "finish", die_after_start)
        else:

            def die(*_a: Any, **_k: Any) -> Any:
                raise SystemExit("worker killed while the job ran")

            mp.setattr(creates, "apply_prepared_creates", die)
            mp.setattr("cosell_sync.apply.apply_prepared_creates", die)
        sync_stack.run(expect="failed")
    assert sum(_partner_ids(sync_stack)[d] for d in deals) <= DEALS
    sync_stack.reset_calls()
    sync_stack.run()
    calls = _calls(sync_stack)
    assert calls.get("CreateOpportunity", 0) == 0
    _assert_each_deal_has_one_opportunity(sync_stack, deals)
    jobs = sync_stack.pc.list_opportunity_bulk_jobs(Catalog="AWS")["OpportunityBulkJobSummaries"]
    assert len(jobs) == 1, "the re-run resumed the job instead of starting another"
    sync_stack.run()
    _assert_each_deal_has_one_opportunity(sync_stack, deals)


def test_deal_whose_link_was_cleared_is_linked_again_not_duplicated(sync_stack: Any) -> None:
    deals = _cosell_deals(sync_stack, 2)
    # These deals name no partner solution: their stage waits, a record error that fails each run's report.
    sync_stack.run(expect="failed_at_report")
    before = _links(sync_stack, deals)
    assert all(before.values())
    sync_stack.update_deal(deals[0], {"aws_opportunity_id": ""})
    sync_stack.reset_calls()
    sync_stack.run(expect="failed_at_report")
    calls = _calls(sync_stack)
    assert calls.get("CreateOpportunity", 0) == 0
    assert calls.get("SearchOpportunities", 0) >= 1
    assert _links(sync_stack, deals) == before
    _assert_each_deal_has_one_opportunity(sync_stack, deals)


def test_account_without_search_still_creates_once(sync_stack: Any) -> None:
    sync_stack.pc_control("config", {"search_enabled": False})
    deals = _cosell_deals(sync_stack, 2)
    # These deals name no partner solution: their stage waits, a record error that fails each run's report.
    sync_stack.run(expect="failed_at_report")
    _assert_each_deal_has_one_opportunity(sync_stack, deals)
    sync_stack.run(expect="failed_at_report")
    _assert_each_deal_has_one_opportunity(sync_stack, deals)


def test_aws_insights_reach_the_deal_and_an_unchanged_book_writes_nothing(sync_stack: Any) -> None:
    ids = sync_stack.pc_control("seed", {"opportunities": 8, "seed": 4, "catalog": "AWS"})["opportunity_ids"]
    sync_stack.run()
    statuses = {
        oid: sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)["LifeCycle"].get("ReviewStatus")
        for oid in ids
    }
    seen_by_aws = sorted(oid for oid, status in statuses.items() if status != "Pending Submission")
    assert seen_by_aws, "the seeded book has no opportunity AWS has seen"
    oid = seen_by_aws[0]
    sync_stack.pc_control(
        "simulate/insights",
        {
            "catalog": "AWS",
            "opportunity_id": oid,
            "engagement_score": "High",
            "quality_score": 87,
            "origin": "AWS Referral",
            "cosell_motion": "Co-Sell",
        },
    )
    first = sync_stack.report(sync_stack.run(conf={"mode": "full"}))
    deal = sync_stack.deal_by_opportunity(
        oid, ["aws_engagement_score", "aws_opportunity_quality_score", "aws_origin", "aws_cosell_motion"]
    )
    assert deal["properties"]["aws_engagement_score"] == "High"
    assert deal["properties"]["aws_opportunity_quality_score"] in ("87", "87.0")
    assert deal["properties"]["aws_origin"] == "AWS Referral"
    assert first["insights"]["written"] >= 1
    again = sync_stack.report(sync_stack.run(conf={"mode": "full"}))
    assert again["insights"]["read"] == len(seen_by_aws)
    assert again["insights"]["written"] == 0


def test_opt_in_bulk_updates_and_a_record_edited_meanwhile_is_re_read(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    """bulk.updates: HubSpot edits go as one job; a record AWS edits after the read is updated on its own,
    after a re-read, keeping the AWS edit (never the old plan over a newer edit)."""
    from scenarios import canonical_pc, editable, set_hs, set_pc, synced_book

    from cosell_sync import creates

    _config(tmp_path, monkeypatch, updates=True)
    # Paused until AWS's edit is in: at a slow rate the first record could still be processed before the edit
    # under a loaded CI (seen once), and there would be no race to test.
    sync_stack.pc_control("config", {"bulk_records_per_second": 0})
    ids = editable(sync_stack, synced_book(sync_stack, 12))
    assert len(ids) > 3, "the seeded book needs more than bulk.min_records editable records"
    for oid in ids:
        set_hs(sync_stack, oid, {"project_title": f"Edited in HubSpot {oid}"})
    raced = ids[0]
    real_send = creates._send_job

    def send_then_aws_edits(*args: Any, **kwargs: Any) -> Any:
        job = real_send(*args, **kwargs)
        if job is not None and job.get("updates"):
            # AWS edits another field after the read, while the job waits to be processed.
            set_pc(sync_stack, raced, {"next_steps": "Edited by AWS meanwhile"})
            sync_stack.pc_control("config", {"bulk_records_per_second": 20})
        return job

    monkeypatch.setattr(creates, "_send_job", send_then_aws_edits)
    sync_stack.reset_calls()
    sync_stack.run()
    calls = _calls(sync_stack)
    assert calls.get("StartOpportunityBulkJob") == 1
    # Only the raced record was written on its own (a re-read, then one UpdateOpportunity).
    assert calls.get("UpdateOpportunity", 0) == 1
    for oid in ids:
        assert canonical_pc(sync_stack, oid)["project_title"] == f"Edited in HubSpot {oid}"
    assert canonical_pc(sync_stack, raced)["next_steps"] == "Edited by AWS meanwhile"
