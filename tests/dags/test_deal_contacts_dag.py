"""A deal's contacts as a seller meets them on a new opportunity (dag.test() on the emulators).

A new co-sell deal with three contacts, one of them on the portal's ``Primary`` deal -> contact label (and not
the oldest): the opportunity's ``Customer.Contacts`` has all three, the labelled one first, then the others
oldest first. A re-run writes nothing; a later HubSpot edit of the deal updates the opportunity without
dropping the other contacts (UpdateOpportunity replaces the whole record). Later, a contact added to the
deal, an other contact's e-mail edited and a contact removed each reach the opportunity, the primary first.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from scenarios import (
    deal_with_three_contacts,
    hs_call,
    new_contact,
    pc_contact_emails,
    run_notes,
    writes,
    xcom,
)

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


def _console_edit(stack: Any, oid: str, email: str, members: dict[str, str]) -> None:
    """A Partner Central console edit of one of the opportunity's contacts (found by e-mail)."""
    customer = stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)["Customer"]
    contact = next(c for c in customer["Contacts"] if c.get("Email") == email)
    contact.update(members)
    stack.pc_control("simulate/aws-update", {"catalog": "AWS", "identifier": oid, "Customer": customer})


def _hs_contact(stack: Any, contact_id: str) -> dict[str, Any]:
    return hs_call(stack, "GET", f"/crm/v3/objects/contacts/{contact_id}?properties=jobtitle,phone")[
        "properties"
    ]


def _olga_edited_in_the_console(stack: Any) -> tuple[str, dict[str, str], str, Any]:
    """A synced deal with three contacts; the console edits Olga's (contact 2) title and phone; one run.

    Returns (deal id, contact ids by name, opportunity id, the run that carried the edit to HubSpot).
    """
    deal_id, ids = deal_with_three_contacts(stack)
    stack.run()
    listed = stack.pc.list_opportunities(Catalog="AWS", MaxResults=100)["OpportunitySummaries"]
    oid = next(s["Id"] for s in listed if s.get("PartnerOpportunityIdentifier") == deal_id)
    _console_edit(
        stack, oid, "olga.oldest@customer.example", {"BusinessTitle": "Head of Data", "Phone": "+14155550123"}
    )
    stack.reset_calls()
    return deal_id, ids, oid, stack.run()


def test_an_other_contact_edited_in_partner_central_reaches_its_hubspot_contact(sync_stack: Any) -> None:
    """``Customer.Contacts[1..]`` edited in the console come back to HubSpot (three-way, like deal fields).

    Changed in Partner Central only: written to the HubSpot contact, audited, noted on the deal, and the
    next run writes nothing. Changed on both sides: a conflict, on the audit trail, decided by the field's
    strategy (``last_write_wins`` here keeps HubSpot's, which reaches the opportunity).
    """
    deal_id, ids, oid, run = _olga_edited_in_the_console(sync_stack)
    olga, mo = "olga.oldest@customer.example", "mo.middle@customer.example"
    written = _hs_contact(sync_stack, ids["oldest"])
    assert (written["jobtitle"], written["phone"]) == ("Head of Data", "+14155550123")
    assert _hs_contact(sync_stack, ids["middle"])["jobtitle"] == "Buyer"  # the other contacts untouched
    pc_writes, hs_writes = writes(sync_stack)
    assert pc_writes == {}
    assert "POST /crm/v3/objects/contacts/batch/update" in hs_writes
    [entry] = [
        e
        for e in sync_stack.audit(oid)
        if e["action"] == "UPDATE_CONTACT" and e["metadata"]["runId"] == run.run_id
    ]
    assert entry["success"]
    assert entry["changes"]["contact_job_title (contact 2)"] == {"old": "Buyer", "new": "Head of Data"}
    assert entry["changes"]["contact_phone (contact 2)"]["new"] == "+14155550123"
    assert entry["metadata"]["contactIds"] == {"contact 2": ids["oldest"]}  # a person can find the contact
    deal_notes = hs_call(sync_stack, "GET", f"/crm/v4/objects/deals/{deal_id}/associations/notes")["results"]
    assert deal_notes, "the deal has a note saying what changed"

    # Nothing changed since: the next run writes nothing on either side.
    sync_stack.reset_calls()
    sync_stack.run()
    assert writes(sync_stack) == ({}, [])

    # The same member edited on both sides: a conflict; HubSpot's value is kept on both sides.
    _console_edit(sync_stack, oid, mo, {"BusinessTitle": "VP Engineering"})
    hs_call(
        sync_stack,
        "PATCH",
        f"/crm/v3/objects/contacts/{ids['middle']}",
        {"properties": {"jobtitle": "Director"}},
    )
    run = sync_stack.run()
    assert _hs_contact(sync_stack, ids["middle"])["jobtitle"] == "Director"
    contacts = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)["Customer"]["Contacts"]
    assert next(c for c in contacts if c["Email"] == mo)["BusinessTitle"] == "Director"
    assert next(c for c in contacts if c["Email"] == olga)["BusinessTitle"] == "Head of Data"
    [conflict] = [
        e
        for e in sync_stack.audit(oid)
        if e["action"] == "CONFLICT_DETECTED" and e["metadata"]["runId"] == run.run_id
    ]
    assert conflict["changes"]["contact_job_title (contact 3)"] == {
        "old": "VP Engineering",
        "new": "Director",
    }


def test_a_rollback_of_that_run_restores_the_hubspot_contact_and_the_opportunity_follows(
    sync_stack: Any,
) -> None:
    """``cosell_rollback`` by run id undoes the run's write to an other contact's HubSpot contact."""
    _, ids, oid, undone = _olga_edited_in_the_console(sync_stack)

    sync_stack.reset_calls()
    dry = sync_stack.run("cosell_rollback", conf={"run_id": undone.run_id})
    assert writes(sync_stack) == ({}, [])
    planned = xcom(dry, "rollback")["other_contacts"][oid]
    assert sorted(planned["restore"]) == ["contact_job_title (contact 2)", "contact_phone (contact 2)"]

    sync_stack.run("cosell_rollback", conf={"run_id": undone.run_id, "dry_run": False})
    restored = _hs_contact(sync_stack, ids["oldest"])
    assert (restored["jobtitle"], restored.get("phone") or None) == ("Buyer", None)
    [entry] = [e for e in sync_stack.audit(oid) if e["action"] == "ROLLBACK_CONTACT"]
    assert entry["changes"]["contact_job_title (contact 2)"] == {"old": "Head of Data", "new": "Buyer"}
    assert entry["metadata"]["rolledBackRun"] == undone.run_id

    # The next reconcile carries the restored contact to the opportunity, like a person's edit in HubSpot.
    sync_stack.run()
    contacts = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)["Customer"]["Contacts"]
    olga = next(c for c in contacts if c["Email"] == "olga.oldest@customer.example")
    assert (olga.get("BusinessTitle"), olga.get("Phone")) == ("Buyer", None)
    # Rolled back again: nothing left to restore (the contact no longer holds the run's value).
    again = sync_stack.run("cosell_rollback", conf={"run_id": undone.run_id})
    assert xcom(again, "rollback")["other_contacts"][oid]["restore"] == []


def test_a_rollback_to_a_point_in_time_restores_the_other_contacts_the_sync_wrote_since(
    sync_stack: Any,
) -> None:
    """``cosell_rollback`` by opportunity and time undoes the sync's later writes to an other contact."""
    _, ids, oid, _ = _olga_edited_in_the_console(sync_stack)
    [written] = [e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_CONTACT"]
    # Just before the run that wrote Olga's contact (and after the one that created the opportunity).
    written_at = datetime.fromisoformat(written["SK"].split("#", 1)[0])
    target = (written_at - timedelta(milliseconds=1)).isoformat(timespec="milliseconds")
    conf = {"opportunity_id": oid, "target_timestamp": target}

    sync_stack.reset_calls()
    dry = sync_stack.run("cosell_rollback", conf=conf)
    assert writes(sync_stack) == ({}, [])
    planned = xcom(dry, "rollback")["other_contacts"][oid]
    assert sorted(planned["restore"]) == ["contact_job_title (contact 2)", "contact_phone (contact 2)"]

    sync_stack.run("cosell_rollback", conf={**conf, "dry_run": False})
    restored = _hs_contact(sync_stack, ids["oldest"])
    assert (restored["jobtitle"], restored.get("phone") or None) == ("Buyer", None)
    assert _hs_contact(sync_stack, ids["middle"])["jobtitle"] == "Buyer"  # not written by the sync: untouched
    [entry] = [e for e in sync_stack.audit(oid) if e["action"] == "ROLLBACK_CONTACT"]
    assert entry["changes"]["contact_job_title (contact 2)"] == {"old": "Head of Data", "new": "Buyer"}
    assert entry["metadata"]["targetTimestamp"].startswith(target[:23])
    assert entry["metadata"]["contactIds"] == {"contact 2": ids["oldest"]}

    # The opportunity follows at the next reconcile; the same rollback again finds nothing to restore.
    sync_stack.run()
    contacts = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)["Customer"]["Contacts"]
    olga = next(c for c in contacts if c["Email"] == "olga.oldest@customer.example")
    assert (olga.get("BusinessTitle"), olga.get("Phone")) == ("Buyer", None)
    sync_stack.reset_calls()
    again = sync_stack.run("cosell_rollback", conf={**conf, "dry_run": False})
    assert writes(sync_stack) == ({}, [])
    assert xcom(again, "rollback")["other_contacts"][oid]["restore"] == []
    assert len([e for e in sync_stack.audit(oid) if e["action"] == "ROLLBACK_CONTACT"]) == 1


def test_an_other_contact_written_by_a_run_that_died_mid_apply_is_audited_once(
    sync_stack: Any, monkeypatch: Any
) -> None:
    """``apply_hubspot`` dies after writing Olga's contact and before it stores its results.

    The dead run's commit never ran and its results are gone; the next run finds the contact holding the
    values the dead plan meant for it and audits the write under the dead run's id, once; a rollback by
    the dead run's id then undoes it.
    """
    from cosell_sync.writers.hubspot import HubSpotWriter

    def dies(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("worker lost after the contact writes")

    deal_id, ids = deal_with_three_contacts(sync_stack)
    sync_stack.run()
    listed = sync_stack.pc.list_opportunities(Catalog="AWS", MaxResults=100)["OpportunitySummaries"]
    oid = next(s["Id"] for s in listed if s.get("PartnerOpportunityIdentifier") == deal_id)
    _console_edit(
        sync_stack,
        oid,
        "olga.oldest@customer.example",
        {"BusinessTitle": "Head of Data", "Phone": "+14155550123"},
    )
    with monkeypatch.context() as mp:
        mp.setattr(HubSpotWriter, "write_notes", dies)
        dead = sync_stack.run(expect="failed")
    written = _hs_contact(sync_stack, ids["oldest"])
    assert (written["jobtitle"], written["phone"]) == ("Head of Data", "+14155550123")
    assert not [e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_CONTACT"]

    sync_stack.reset_calls()
    second = sync_stack.run()
    [entry] = [e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_CONTACT"]
    assert entry["success"]
    assert entry["metadata"]["runId"] == dead.run_id
    assert entry["metadata"]["journalStatus"] == "INTENT"
    assert entry["metadata"]["auditedByRun"] == second.run_id
    assert entry["changes"]["contact_job_title (contact 2)"] == {"old": "Buyer", "new": "Head of Data"}
    assert entry["changes"]["contact_phone (contact 2)"]["new"] == "+14155550123"
    assert entry["metadata"]["contactIds"] == {"contact 2": ids["oldest"]}
    # Judged from one read: nothing written again, only the deal note the dead run owed for the contact.
    assert writes(sync_stack) == ({}, ["POST /crm/v3/objects/notes/batch/create"])
    (note,) = run_notes(sync_stack, deal_id, dead.run_id)
    assert "contact 2 (contact_job_title, contact_phone)" in note
    assert "Head of Data" not in note  # values never go in a note
    assert not [i for i in sync_stack.retry_items() if i.get("opportunity_id") == oid]

    sync_stack.run()
    assert len([e for e in sync_stack.audit(oid) if e["action"] == "UPDATE_CONTACT"]) == 1
    assert len(run_notes(sync_stack, deal_id, dead.run_id)) == 1

    # The dead run can be rolled back by its id like any run: the audit entry written for it later is
    # in its change set, so its write to Olga's contact is undone.
    undo = sync_stack.run("cosell_rollback", conf={"run_id": dead.run_id, "dry_run": False})
    assert sorted(xcom(undo, "rollback")["other_contacts"][oid]["restore"]) == [
        "contact_job_title (contact 2)",
        "contact_phone (contact 2)",
    ]
    restored = _hs_contact(sync_stack, ids["oldest"])
    assert (restored["jobtitle"], restored.get("phone") or None) == ("Buyer", None)
