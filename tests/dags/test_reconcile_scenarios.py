"""``cosell_reconcile`` end to end: ``dag.test()`` against both emulators and moto (S3, DynamoDB).

Each scenario is what an operator would see: records created, fields moved, writes deferred or refused,
conflicts opened, and the counters the emulators keep of every API call.
"""

from __future__ import annotations

from typing import Any

import pytest

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
    writes = {k: v for k, v in pc_calls["by_operation"].items() if not k.startswith(("Get", "List"))}
    assert writes == {}
    assert second["partner_central_to_hubspot"] == {"created": 0, "updated": 0, "failed": 0}
    assert second["hubspot_to_partner_central"]["updated"] == 0
    assert not [
        e
        for e in hs_calls["by_endpoint"]
        if "batch/update" in e or "batch/create" in e or "batch/upsert" in e
    ]
