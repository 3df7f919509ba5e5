"""Deal line items <-> opportunity solutions (``sync_solutions`` of ``cosell_reconcile``), end to end."""

from __future__ import annotations

from typing import Any

import requests

from tests.dags.scenarios import editable, set_hs, set_pc, synced_book

HEADERS = {"Authorization": "Bearer test-token"}


def _product_ids(stack: Any) -> dict[str, str]:
    r = requests.get(
        f"{stack.hs_url}/crm/v3/objects/products",
        headers=HEADERS,
        params={"limit": 100, "properties": "aws_solution_id"},
        timeout=30,
    )
    r.raise_for_status()
    return {p["properties"]["aws_solution_id"]: p["id"] for p in r.json()["results"]}


def _line_items(stack: Any, deal_id: str) -> dict[str, dict[str, Any]]:
    """The deal's line items by id, with product, quantity and price."""
    r = requests.get(
        f"{stack.hs_url}/crm/v4/objects/deals/{deal_id}/associations/line_items", headers=HEADERS, timeout=30
    )
    r.raise_for_status()
    ids = [str(row["toObjectId"]) for row in r.json()["results"]]
    if not ids:
        return {}
    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/line_items/batch/read",
        headers=HEADERS,
        json={
            "inputs": [{"id": i} for i in ids],
            "properties": ["hs_product_id", "quantity", "price", "name"],
        },
        timeout=30,
    )
    r.raise_for_status()
    return {o["id"]: o["properties"] for o in r.json()["results"]}


def _add_line_item(stack: Any, deal_id: str, product_id: str) -> str:
    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/line_items",
        headers=HEADERS,
        json={
            "properties": {"hs_product_id": product_id, "quantity": "2", "name": "added by a seller"},
            "associations": [
                {
                    "to": {"id": deal_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}],
                }
            ],
        },
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["id"]


def _solutions(stack: Any, oid: str) -> list[str]:
    opp = stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
    return sorted((opp.get("RelatedEntityIdentifiers") or {}).get("Solutions") or [])


def test_line_items_and_associated_solutions_follow_each_other(sync_stack: Any) -> None:
    sync_stack.run("cosell_catalog")
    products = _product_ids(sync_stack)
    ids = synced_book(sync_stack, 8)

    # The initial run: an opportunity AWS already has solutions on gets their line items, once.
    with_solutions = [o for o in ids if _solutions(sync_stack, o)]
    assert with_solutions, "the seeded book has no opportunity with a solution"
    first = with_solutions[0]
    first_deal = sync_stack.deal_by_opportunity(first)["id"]
    items = _line_items(sync_stack, first_deal)
    assert sorted(p["hs_product_id"] for p in items.values()) == sorted(
        products[s] for s in _solutions(sync_stack, first)
    )
    assert {(p["quantity"], p["price"]) for p in items.values()} == {("1", "0")}

    # A seller adds two line items on a deal still in Pending Submission: the active solution is
    # associated, the inactive one is refused on the deal and in the audit.
    pending = editable(sync_stack, ids)
    assert len(pending) >= 3, "the seeded book needs three opportunities in Pending Submission"
    oid, submitted = pending[0], pending[1]
    deal_id = sync_stack.deal_by_opportunity(oid)["id"]
    before = _solutions(sync_stack, oid)
    added = _add_line_item(sync_stack, deal_id, products["S-1000002"])
    _add_line_item(sync_stack, deal_id, products["S-1000005"])  # Inactive
    # Another deal names its solution by a line item only (no aws_solution_ids) and enters the submit stage:
    # the line item's solution is associated before the stage move and the submission, which succeed.
    _add_line_item(sync_stack, sync_stack.deal_by_opportunity(submitted)["id"], products["S-1000001"])
    set_hs(sync_stack, submitted, {"stage": "Committed"})
    sync_stack.reset_calls()
    run = sync_stack.run()

    assert _solutions(sync_stack, oid) == sorted({*before, "S-1000002"})
    pc_calls, _ = sync_stack.calls()
    # One for each: the submitted deal's solution (before its stage move), and the other deal's line item.
    assert pc_calls["by_operation"].get("AssociateOpportunity") == 2
    assert sync_stack.report(run)["api_calls"]["AssociateOpportunity"] == 2
    assert pc_calls["by_operation"]["StartEngagementFromOpportunityTask"] == 1
    opp = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=submitted)
    assert opp["RelatedEntityIdentifiers"]["Solutions"] == ["S-1000001"]
    assert opp["LifeCycle"]["Stage"] == "Committed"
    assert sync_stack.report(run)["hubspot_to_partner_central"]["submitted"] == 1
    error = sync_stack.deal_by_opportunity(oid, ["aws_sync_error"])["properties"]["aws_sync_error"]
    assert "SOLUTION_NOT_ACTIVE" in error
    assert "S-1000005" in error
    actions = {e["action"]: e for e in sync_stack.audit(oid) if e["metadata"].get("step") == "sync_solutions"}
    assert actions["ASSOCIATE_OPPORTUNITY"]["changes"] == {"solutions.S-1000002": {"old": False, "new": True}}
    assert actions["SOLUTIONS_NOT_SYNCED"]["success"] is False

    # In one run: the seller removes the line item (the solution is disassociated) while AWS associates
    # another solution and an AWS product in Partner Central (they reach the deal).
    requests.delete(f"{sync_stack.hs_url}/crm/v3/objects/line_items/{added}", headers=HEADERS, timeout=30)
    sync_stack.pc.associate_opportunity(
        Catalog="AWS",
        OpportunityIdentifier=oid,
        RelatedEntityType="Solutions",
        RelatedEntityIdentifier="S-1000003",
    )
    sync_stack.pc.associate_opportunity(
        Catalog="AWS",
        OpportunityIdentifier=oid,
        RelatedEntityType="AwsProducts",
        RelatedEntityIdentifier="AmazonEC2",
    )
    sync_stack.reset_calls()
    sync_stack.run()

    assert _solutions(sync_stack, oid) == sorted({*before, "S-1000003"})
    products_now = [p["hs_product_id"] for p in _line_items(sync_stack, deal_id).values()]
    assert products_now.count(products["S-1000003"]) == 1
    assert products["S-1000002"] not in products_now
    deal = sync_stack.deal_by_opportunity(oid, ["aws_related_aws_products"])
    assert deal["properties"]["aws_related_aws_products"] == "AmazonEC2"
    # The line items made in the first run were not made again, and nothing was associated twice.
    assert sorted(p["hs_product_id"] for p in _line_items(sync_stack, first_deal).values()) == sorted(
        products[s] for s in _solutions(sync_stack, first)
    )
    pc_calls, _ = sync_stack.calls()
    assert "AssociateOpportunity" not in pc_calls["by_operation"]
    assert pc_calls["by_operation"]["DisassociateOpportunity"] == 1

    # A deal without line items edited in HubSpot while AWS edits its record: no line item can have changed,
    # so the step compares it with the line items it holds and reads no deal's line items again.
    quiet = pending[2]
    assert not _line_items(sync_stack, sync_stack.deal_by_opportunity(quiet)["id"])
    set_hs(sync_stack, quiet, {"project_title": "Data lake migration, phase 2"})
    set_pc(sync_stack, quiet, {"next_steps": "AWS reviewed the architecture"})
    run = sync_stack.run()

    # In scope: the seven deals with solution line items (a removal shows only by reading them) and the quiet
    # one; read: only the seven.
    step = sync_stack.artefact(run, "solutions.json")
    assert (step["in_scope"], step["line_items_read"]) == (len(ids), len(ids) - 1)
    # Both edits crossed over, and the deal gained no line item nor its record a solution.
    opp = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=quiet)
    assert opp["Project"]["Title"] == "Data lake migration, phase 2"
    deal = sync_stack.deal_by_opportunity(quiet, ["aws_next_steps"])
    assert deal["properties"]["aws_next_steps"] == "AWS reviewed the architecture"
    assert not _line_items(sync_stack, deal["id"])
    assert _solutions(sync_stack, quiet) == []
