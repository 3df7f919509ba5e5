"""Partner solutions as HubSpot products (``cosell_catalog``), end to end against the emulators."""

from __future__ import annotations

from typing import Any

import requests

HEADERS = {"Authorization": "Bearer test-token"}


def _products(stack: Any, archived: bool = False) -> dict[str, dict[str, Any]]:
    """Products by aws_solution_id (list endpoint: archived ones too when asked)."""
    r = requests.get(
        f"{stack.hs_url}/crm/v3/objects/products",
        headers=HEADERS,
        params={
            "limit": 100,
            "archived": str(archived).lower(),
            "properties": "name,aws_solution_id,aws_solution_status,aws_solution_category,hs_sku,price",
        },
        timeout=30,
    )
    r.raise_for_status()
    return {
        p["properties"]["aws_solution_id"]: p
        for p in r.json()["results"]
        if p["properties"].get("aws_solution_id")
    }


def _hs_writes(stack: Any) -> dict[str, int]:
    _, hs = stack.calls()
    return {
        k: v
        for k, v in hs["by_endpoint"].items()
        if "products/batch/upsert" in k or "products/batch/archive" in k
    }


def test_solutions_become_products_once_and_a_withdrawn_one_is_archived(sync_stack: Any) -> None:
    listed = [
        s["Id"] for s in sync_stack.pc.list_solutions(Catalog="AWS", MaxResults=100)["SolutionSummaries"]
    ]
    assert len(listed) == 5

    # A dry run lists and reads, writes nothing.
    sync_stack.run("cosell_catalog", conf={"dry_run": True})
    assert _products(sync_stack) == {}

    sync_stack.reset_calls()
    sync_stack.run("cosell_catalog")
    pc_calls, _ = sync_stack.calls()
    assert pc_calls["by_operation"]["ListSolutions"] == 1
    assert _hs_writes(sync_stack) == {"POST /crm/v3/objects/products/batch/upsert": 1}

    products = _products(sync_stack)
    assert sorted(products) == sorted(listed)
    one = products["S-1000002"]["properties"]
    assert (one["name"], one["hs_sku"], one["aws_solution_category"], one["aws_solution_status"]) == (
        "Migration Factory",
        "S-1000002",
        "Consulting Service",
        "Active",
    )
    assert products["S-1000005"]["properties"]["aws_solution_status"] == "Inactive"
    created = [e for e in sync_stack.audit("solution#AWS#S-1000002") if e["action"] == "CREATE_PRODUCT"]
    assert len(created) == 1
    assert created[0]["metadata"]["productId"] == products["S-1000002"]["id"]

    # A second run writes nothing: same products, no upsert, no archive.
    sync_stack.reset_calls()
    sync_stack.run("cosell_catalog")
    assert _hs_writes(sync_stack) == {}
    assert {k: v["id"] for k, v in _products(sync_stack).items()} == {k: v["id"] for k, v in products.items()}

    # The partner withdraws one solution and renames another: one archive, one update.
    sync_stack.pc_control(
        "solutions", {"remove": ["S-1000004"], "solutions": [{"Id": "S-1000001", "Name": "Data Lake Pro"}]}
    )
    sync_stack.reset_calls()
    sync_stack.run("cosell_catalog")
    assert set(_hs_writes(sync_stack)) == {
        "POST /crm/v3/objects/products/batch/upsert",
        "POST /crm/v3/objects/products/batch/archive",
    }
    live = _products(sync_stack)
    assert "S-1000004" not in live
    assert live["S-1000001"]["properties"]["name"] == "Data Lake Pro"
    assert live["S-1000001"]["id"] == products["S-1000001"]["id"]
    assert _products(sync_stack, archived=True)["S-1000004"]["id"] == products["S-1000004"]["id"]
    archived = [e for e in sync_stack.audit("solution#AWS#S-1000004") if e["action"] == "ARCHIVE_PRODUCT"]
    assert len(archived) == 1

    # It comes back: one product again, not two.
    sync_stack.pc_control("solutions", {"solutions": [{"Id": "S-1000004", "Name": "GenAI Assistant"}]})
    sync_stack.run("cosell_catalog")
    again = _products(sync_stack)
    assert sorted(again) == sorted(listed)
    assert again["S-1000004"]["properties"]["name"] == "GenAI Assistant"
    # Line items made from the archived product still map to the solution (sync_solutions reads this state).
    from cosell_sync.config import load_config
    from cosell_sync.storage import SnapshotStore, StepState

    cfg = load_config()
    store = SnapshotStore(sync_stack.aws("s3"), cfg.storage.bucket, cfg.storage.prefix)
    frame, _ = StepState(store, "AWS", "catalog").load()
    assert frame.at["S-1000004", "product_id"] == again["S-1000004"]["id"]
    assert frame.at["S-1000004", "previous_product_ids"] == products["S-1000004"]["id"]
