"""A deal's other contacts (``Customer.Contacts[1..]``) under faults (issue 13), counted on both sides.

1. The ``UpdateOpportunity`` that carries a new contact is applied by Partner Central, then its answer is
   lost (a read timeout): the opportunity holds the contact once, the write is audited once, and the
   next run neither sends it again nor leaves it unrecorded.
2. The contacts' batch read is throttled past the client's retries while an other contact's edit waits:
   the run fails without moving past the edit, and the next run brings it to Partner Central.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.dags.scenarios import (
    deal_with_three_contacts,
    hs_call,
    new_contact,
    pc_contact_emails,
    writes,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

PIA, OLGA, MO = "pia.primary@customer.example", "olga.oldest@customer.example", "mo.middle@customer.example"


def _linked(stack: Any, deal_id: str) -> str:
    listed = stack.pc.list_opportunities(Catalog="AWS", MaxResults=100)["OpportunitySummaries"]
    return next(s["Id"] for s in listed if s.get("PartnerOpportunityIdentifier") == deal_id)


def _updates(stack: Any, oid: str) -> list[dict[str, Any]]:
    return [e for e in stack.audit(oid) if e["action"] == "UPDATE_OPPORTUNITY"]


def test_an_update_with_a_new_contact_applied_then_timed_out_is_neither_resent_nor_unaudited(
    sync_stack: Any, monkeypatch: Any
) -> None:
    from cosell_hooks.partner_central import PartnerCentralHook
    from cosell_sync.errors import ServiceUnavailableError

    deal_id, _ = deal_with_three_contacts(sync_stack)
    sync_stack.run()
    oid = _linked(sync_stack, deal_id)
    before = len(_updates(sync_stack, oid))
    nia = new_contact(sync_stack, "nia.newest@customer.example", "Nia", "Newest")
    hs_call(sync_stack, "PUT", f"/crm/v4/objects/deals/{deal_id}/associations/default/contacts/{nia}")

    real_call = PartnerCentralHook.call
    lost = {"answers": 0}

    def applied_then_timed_out(self: Any, operation: str, **kwargs: Any) -> Any:
        answer = real_call(self, operation, **kwargs)
        if operation == "update_opportunity" and kwargs.get("Identifier") == oid and not lost["answers"]:
            lost["answers"] += 1  # Partner Central applied it; the answer never came back
            raise ServiceUnavailableError(
                "update_opportunity failed: Read timeout", service="partner_central", code="ReadTimeoutError"
            )
        return answer

    monkeypatch.setattr(PartnerCentralHook, "call", applied_then_timed_out)
    sync_stack.reset_calls()
    sync_stack.run(expect="failed_at_report")
    assert lost["answers"] == 1
    assert writes(sync_stack)[0] == {"UpdateOpportunity": 1}
    assert pc_contact_emails(sync_stack, oid) == [PIA, OLGA, MO, "nia.newest@customer.example"]
    # The write whose answer was lost is on the audit trail (the journal), once.
    assert len(_updates(sync_stack, oid)) == before + 1

    monkeypatch.setattr(PartnerCentralHook, "call", real_call)
    sync_stack.reset_calls()
    sync_stack.run()  # the queued record: Partner Central already holds the contacts, nothing is sent
    assert writes(sync_stack)[0] == {}
    assert pc_contact_emails(sync_stack, oid) == [PIA, OLGA, MO, "nia.newest@customer.example"]
    assert len(_updates(sync_stack, oid)) == before + 1
    assert not sync_stack.deal_by_opportunity(oid)["properties"].get("aws_sync_error")

    # The baseline now knows the contacts: removing one later removes exactly that one.
    hs_call(sync_stack, "DELETE", f"/crm/v4/objects/deals/{deal_id}/associations/contacts/{nia}")
    sync_stack.reset_calls()
    sync_stack.run()
    assert writes(sync_stack)[0] == {"UpdateOpportunity": 1}
    assert pc_contact_emails(sync_stack, oid) == [PIA, OLGA, MO]


def test_an_other_contacts_edit_whose_read_was_throttled_reaches_the_opportunity_next_run(
    sync_stack: Any, monkeypatch: Any
) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_HUBSPOT_DEFAULT"])
    conn["extra"] = {**(conn.get("extra") or {}), "max_retries": 0}
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(conn))
    deal_id, ids = deal_with_three_contacts(sync_stack)
    sync_stack.run()
    oid = _linked(sync_stack, deal_id)
    hs_call(
        sync_stack,
        "PATCH",
        f"/crm/v3/objects/contacts/{ids['middle']}",
        {"properties": {"email": "mo.moved@customer.example"}},
    )
    throttled = {"times": 20, "status": 429}
    sync_stack.hs_control(
        "faults", {"endpoint_faults": {"POST /crm/v3/objects/contacts/batch/read": throttled}}
    )
    sync_stack.run(expect="failed")
    assert pc_contact_emails(sync_stack, oid) == [PIA, OLGA, MO]

    sync_stack.hs_control("faults", {"endpoint_faults": {}})
    sync_stack.reset_calls()
    sync_stack.run()
    assert pc_contact_emails(sync_stack, oid) == [PIA, OLGA, "mo.moved@customer.example"]
    assert writes(sync_stack)[0] == {"UpdateOpportunity": 1}
    sync_stack.reset_calls()
    sync_stack.run()
    assert writes(sync_stack) == ({}, [])
