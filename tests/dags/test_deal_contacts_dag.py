"""A deal's contacts as a seller meets them on a new opportunity (dag.test() on the emulators).

A new co-sell deal with three contacts, one of them on the portal's ``Primary`` deal -> contact label (and not
the oldest): the opportunity's ``Customer.Contacts`` has all three, the labelled one first, then the others
oldest first. A re-run writes nothing; a later HubSpot edit of the deal updates the opportunity without
dropping the other contacts (UpdateOpportunity replaces the whole record), and a change to a contact that is
not the primary never takes the primary's place.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

AUTH = {"Authorization": "Bearer test-token"}


def _hs(stack: Any, method: str, path: str, body: Any = None) -> Any:
    r = requests.request(method, f"{stack.hs_url}{path}", headers=AUTH, json=body, timeout=30)
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text[:300]}"
    return r.json() if r.content else None


def _contact(stack: Any, email: str, first: str, last: str) -> str:
    made = _hs(
        stack,
        "POST",
        "/crm/v3/objects/contacts",
        {"properties": {"email": email, "firstname": first, "lastname": last, "jobtitle": "Buyer"}},
    )
    return str(made["id"])


def _contacts_of(stack: Any, deal_id: str) -> list[str]:
    page = _hs(stack, "GET", f"/crm/v4/objects/deals/{deal_id}/associations/contacts")
    return [str(r["toObjectId"]) for r in page["results"]]


def _pc_contacts(stack: Any, oid: str) -> list[str]:
    opp = stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
    return [c.get("Email") for c in opp["Customer"].get("Contacts") or []]


def _writes(stack: Any) -> tuple[dict[str, int], list[str]]:
    pc_calls, hs_calls = stack.calls()
    pc_writes = {
        k: v for k, v in pc_calls["by_operation"].items() if not k.startswith(("Get", "List", "Search"))
    }
    hs_writes = [
        e
        for e in hs_calls["by_endpoint"]
        if "batch/update" in e or "batch/create" in e or "batch/upsert" in e
    ]
    return pc_writes, hs_writes


def test_a_new_deal_sends_all_its_contacts_primary_first(sync_stack: Any) -> None:
    deal_id = sync_stack.hs_control("seed", {"deals": 1, "contacts": 1, "companies": 1, "seed": 11})["deals"][
        0
    ]
    # Start from a known set: the seed's contact(s) off the deal, then three contacts in creation order.
    for cid in _contacts_of(sync_stack, deal_id):
        _hs(sync_stack, "DELETE", f"/crm/v4/objects/deals/{deal_id}/associations/contacts/{cid}")
    oldest = _contact(sync_stack, "olga.oldest@customer.example", "Olga", "Oldest")
    middle = _contact(sync_stack, "mo.middle@customer.example", "Mo", "Middle")
    chosen = _contact(sync_stack, "pia.primary@customer.example", "Pia", "Primary")
    label = _hs(
        sync_stack,
        "POST",
        "/crm/v4/associations/deals/contacts/labels",
        {"label": "Primary", "name": "primary"},
    )
    primary_type = next(t["typeId"] for t in label["results"] if t.get("label") == "Primary")
    for cid in (oldest, middle):
        _hs(sync_stack, "PUT", f"/crm/v4/objects/deals/{deal_id}/associations/default/contacts/{cid}")
    _hs(
        sync_stack,
        "PUT",
        f"/crm/v4/objects/deals/{deal_id}/associations/contacts/{chosen}",
        [{"associationCategory": "USER_DEFINED", "associationTypeId": primary_type}],
    )
    sync_stack.update_deal(deal_id, {"aws_sync_enabled": "true"})

    report = sync_stack.report(sync_stack.run())
    assert report["hubspot_to_partner_central"]["created"] == 1
    listed = sync_stack.pc.list_opportunities(Catalog="AWS", MaxResults=100)["OpportunitySummaries"]
    oid = next(s["Id"] for s in listed if s.get("PartnerOpportunityIdentifier") == str(deal_id))
    opp = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)
    assert [
        (c.get("Email"), c.get("FirstName"), c.get("BusinessTitle")) for c in opp["Customer"]["Contacts"]
    ] == [
        ("pia.primary@customer.example", "Pia", "Buyer"),
        ("olga.oldest@customer.example", "Olga", "Buyer"),
        ("mo.middle@customer.example", "Mo", "Buyer"),
    ]
    assert not sync_stack.deal_by_opportunity(oid)["properties"].get("aws_sync_error")

    # A re-run with no change writes nothing on either side.
    sync_stack.reset_calls()
    sync_stack.run()
    assert _writes(sync_stack) == ({}, [])
    assert _pc_contacts(sync_stack, oid)[0] == "pia.primary@customer.example"

    # A later deal edit is one UpdateOpportunity of the full record: the other contacts stay.
    sync_stack.reset_calls()
    sync_stack.update_deal(deal_id, {"dealname": "Contacts scenario, renamed"})
    sync_stack.run()
    pc_writes, _ = _writes(sync_stack)
    assert pc_writes.get("UpdateOpportunity") == 1
    assert _pc_contacts(sync_stack, oid) == [
        "pia.primary@customer.example",
        "olga.oldest@customer.example",
        "mo.middle@customer.example",
    ]
