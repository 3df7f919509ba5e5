"""``cosell_reconcile`` end to end: a new deal whose customer HubSpot already has gets that company.

``dag.test()`` against both emulators and moto. The customer (domain ``example-customer.com``) is already
a HubSpot company; Partner Central has a new opportunity for it. The initial load creates the deal and
associates it with the existing company: no duplicate, and the company's own data is left as it was.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from scenarios import canonical_pc, hubspot_total, set_pc

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

HEADERS = {"Authorization": "Bearer test-token"}
DOMAIN = "example-customer.com"


def _create_company(stack: Any, properties: dict[str, str]) -> str:
    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/companies",
        headers=HEADERS,
        json={"properties": properties},
        timeout=30,
    )
    r.raise_for_status()
    return str(r.json()["id"])


def _companies_on_domain(stack: Any) -> list[str]:
    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/companies/search",
        headers=HEADERS,
        json={"filterGroups": [{"filters": [{"propertyName": "domain", "operator": "EQ", "value": DOMAIN}]}]},
        timeout=30,
    )
    r.raise_for_status()
    return [str(c["id"]) for c in r.json()["results"]]


def _deal_companies(stack: Any, oid: str) -> list[str]:
    deal = stack.deal_by_opportunity(oid)
    r = requests.get(
        f"{stack.hs_url}/crm/v4/objects/deals/{deal['id']}/associations/companies",
        headers=HEADERS,
        timeout=30,
    )
    r.raise_for_status()
    return sorted(str(a["toObjectId"]) for a in r.json()["results"])


def _apply_calls(stack: Any, run: Any) -> dict[str, int]:
    """The HubSpot calls of the run's apply step alone (the extract's searches are not in them)."""
    from cosell_sync.config import load_config
    from cosell_sync.storage import SnapshotStore, run_key

    cfg = load_config()
    store = SnapshotStore(stack.aws("s3"), cfg.storage.bucket, cfg.storage.prefix)
    return dict(store.get_json(run_key(stack.catalog, run.run_id, "apply_hubspot.json"))["api_calls"])


def test_new_deal_on_an_existing_customer_domain_gets_that_company(sync_stack: Any) -> None:
    existing = _create_company(
        sync_stack, {"name": "Example Customer GmbH", "domain": DOMAIN, "city": "Berlin", "phone": "+49 30 1"}
    )
    ids = sync_stack.pc_control("seed", {"opportunities": 4, "seed": 11, "catalog": "AWS"})["opportunity_ids"]
    oid = ids[0]
    set_pc(sync_stack, oid, {"company_website": "https://www.Example-Customer.com/products"})
    pc_before = canonical_pc(sync_stack, oid)
    assert pc_before["company_state"], "the seed gives an address"
    assert pc_before["company_street"], "the seed gives an address"
    before = hubspot_total(sync_stack, "companies")

    run = sync_stack.run()

    assert sync_stack.report(run)["partner_central_to_hubspot"]["created"] == len(ids)
    # One company on the domain, the customer's own, now the new deal's company.
    assert _companies_on_domain(sync_stack) == [existing]
    assert _deal_companies(sync_stack, oid) == [existing]
    # The other new opportunities got a company each; the matched one none.
    assert hubspot_total(sync_stack, "companies") == before + len(ids) - 1
    # The customer's HubSpot data wins: values it had are kept; only its empty properties were filled.
    r = requests.get(
        f"{sync_stack.hs_url}/crm/v3/objects/companies/{existing}",
        headers=HEADERS,
        params={"properties": "name,city,state,address,website,aws_created_for"},
        timeout=30,
    )
    props = r.json()["properties"]
    assert (props["name"], props["city"]) == ("Example Customer GmbH", "Berlin")
    assert "example-customer.com" in (props.get("website") or "").lower()
    assert props.get("state"), "the company's blanks get the opportunity's address"
    assert props.get("address"), "the company's blanks get the opportunity's address"
    assert not props.get("aws_created_for")
    # One domain search for the run's new companies (4 domains: one request per 100).
    assert _apply_calls(sync_stack, run).get("search:companies") == 1

    # The next run has no new deal: no domain search, no company made, the association stays.
    after = hubspot_total(sync_stack, "companies")
    rerun = sync_stack.run()
    assert _apply_calls(sync_stack, rerun).get("search:companies", 0) == 0
    assert hubspot_total(sync_stack, "companies") == after
    assert _deal_companies(sync_stack, oid) == [existing]
    # Nothing on the opportunity was cleared by the company's former blanks (the full-record update
    # would have nulled them); values HubSpot had (its name) went to Partner Central.
    pc_after = canonical_pc(sync_stack, oid)
    assert (pc_after["company_state"], pc_after["company_street"]) == (
        pc_before["company_state"],
        pc_before["company_street"],
    )
    assert pc_after["company_name"] == "Example Customer GmbH"
