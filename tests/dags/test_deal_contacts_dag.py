"""A deal's contacts as a seller meets them on a new opportunity (dag.test() on the emulators).

A new co-sell deal with three contacts, one of them on the portal's ``Primary`` deal -> contact label (and not
the oldest): the opportunity's ``Customer.Contacts`` has all three, the labelled one first, then the others
oldest first. A re-run writes nothing; a later HubSpot edit of the deal updates the opportunity without
dropping the other contacts (UpdateOpportunity replaces the whole record). Later, a contact added to the
deal, an other contact's e-mail edited and a contact removed each reach the opportunity, the primary first.
"""

from __future__ import annotations

from typing import Any

import pytest
from scenarios import deal_with_three_contacts, hs_call, new_contact, pc_contact_emails, writes

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]


def _audit_of(stack: Any, oid: str, run: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in stack.audit(oid)
        if e["action"] == "UPDATE_OPPORTUNITY" and e["metadata"]["runId"] == run.run_id
    ]


def test_a_new_deal_sends_all_its_contacts_primary_first(sync_stack: Any) -> None:
    deal_id, _ = deal_with_three_contacts(sync_stack)

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
    assert writes(sync_stack) == ({}, [])
    assert pc_contact_emails(sync_stack, oid)[0] == "pia.primary@customer.example"

    # A later deal edit is one UpdateOpportunity of the full record: the other contacts stay.
    sync_stack.reset_calls()
    sync_stack.update_deal(deal_id, {"dealname": "Contacts scenario, renamed"})
    sync_stack.run()
    pc_writes, _ = writes(sync_stack)
    assert pc_writes.get("UpdateOpportunity") == 1
    assert pc_contact_emails(sync_stack, oid) == [
        "pia.primary@customer.example",
        "olga.oldest@customer.example",
        "mo.middle@customer.example",
    ]


def test_contacts_added_edited_and_removed_on_a_linked_deal_reach_its_opportunity(sync_stack: Any) -> None:
    """``Customer.Contacts[1..]`` of an existing opportunity follow the deal's contacts, one way.

    Each change is one ``UpdateOpportunity`` of the full record (the primary stays first). An added or
    removed contact changes the deal's ``num_associated_contacts`` (and so the deal), an edited one is a
    contact change in the window.
    """
    deal_id, ids = deal_with_three_contacts(sync_stack)
    sync_stack.run()
    listed = sync_stack.pc.list_opportunities(Catalog="AWS", MaxResults=100)["OpportunitySummaries"]
    oid = next(s["Id"] for s in listed if s.get("PartnerOpportunityIdentifier") == deal_id)
    pia, olga, mo = (
        "pia.primary@customer.example",
        "olga.oldest@customer.example",
        "mo.middle@customer.example",
    )
    assert pc_contact_emails(sync_stack, oid) == [pia, olga, mo]

    # Added: a fourth contact on the deal.
    newest = new_contact(sync_stack, "nia.newest@customer.example", "Nia", "Newest")
    hs_call(sync_stack, "PUT", f"/crm/v4/objects/deals/{deal_id}/associations/default/contacts/{newest}")
    sync_stack.reset_calls()
    run = sync_stack.run()
    assert pc_contact_emails(sync_stack, oid) == [pia, olga, mo, "nia.newest@customer.example"]
    assert writes(sync_stack)[0] == {"UpdateOpportunity": 1}
    [entry] = _audit_of(sync_stack, oid, run)
    assert entry["metadata"]["otherContacts"] == 3

    # Edited: the middle contact's e-mail (a contact change, the deal itself untouched).
    hs_call(
        sync_stack,
        "PATCH",
        f"/crm/v3/objects/contacts/{ids['middle']}",
        {"properties": {"email": "mo.new@customer.example"}},
    )
    sync_stack.reset_calls()
    sync_stack.run()
    assert pc_contact_emails(sync_stack, oid) == [
        pia,
        olga,
        "mo.new@customer.example",
        "nia.newest@customer.example",
    ]
    assert writes(sync_stack)[0] == {"UpdateOpportunity": 1}

    # Removed: the oldest contact off the deal.
    hs_call(sync_stack, "DELETE", f"/crm/v4/objects/deals/{deal_id}/associations/contacts/{ids['oldest']}")
    sync_stack.reset_calls()
    sync_stack.run()
    assert pc_contact_emails(sync_stack, oid) == [
        pia,
        "mo.new@customer.example",
        "nia.newest@customer.example",
    ]

    # Nothing changed since: no write on either side (the contacts of this test, all made minutes ago,
    # may still be in the search's overlapping window: at most a read, never a write).
    sync_stack.reset_calls()
    sync_stack.run()
    assert writes(sync_stack) == ({}, [])
    assert pc_contact_emails(sync_stack, oid) == [
        pia,
        "mo.new@customer.example",
        "nia.newest@customer.example",
    ]
