"""A deal's contacts in ``Customer.Contacts``: which one is primary, and what the request carries.

A seller with three contacts on a deal expects all three on the opportunity, the one they marked primary
first; a contact Partner Central cannot take must be left out with a reason that shows no personal data,
and an update must never drop the contacts Partner Central already holds after the primary.
"""

from __future__ import annotations

from typing import Any

import pytest

from cosell_sync.config import load_config
from cosell_sync.deal_contacts import (
    AssociatedContact,
    contact_members,
    emails_of,
    merge_other_contacts,
    order_contacts,
    other_contacts_request,
    with_other_contacts,
)
from cosell_sync.mapping import merge_into_opportunity, opportunities_to_frame
from cosell_sync.writers.partner_central import PartnerCentralWriter


def _contact(cid: str, **props: str) -> dict[str, Any]:
    return {"id": cid, "properties": props}


# --- order --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("associated", "label", "expected"),
    [
        pytest.param(
            [AssociatedContact("30"), AssociatedContact("10"), AssociatedContact("20", ("Primary",))],
            "Primary",
            ["20", "10", "30"],
            id="labelled-primary-first-then-by-id",
        ),
        pytest.param(
            [AssociatedContact("30"), AssociatedContact("9"), AssociatedContact("100")],
            "Primary",
            ["9", "30", "100"],
            id="no-label-lowest-id-numeric-not-text-order",
        ),
        pytest.param(
            [AssociatedContact("5", ("primary",)), AssociatedContact("3", ("PRIMARY", "Billing"))],
            "Primary",
            ["3", "5"],
            id="several-labelled-lowest-wins-case-insensitive",
        ),
        pytest.param(
            [AssociatedContact("7", ("Billing",)), AssociatedContact("8", ("Primary",))],
            None,
            ["7", "8"],
            id="label-switched-off",
        ),
        pytest.param(
            [AssociatedContact("4"), AssociatedContact("4", ("Primary",)), AssociatedContact("2")],
            "Primary",
            ["4", "2"],
            id="one-contact-with-two-association-types-counts-once",
        ),
        pytest.param([], "Primary", [], id="no-contacts"),
    ],
)
def test_order_puts_the_primary_first(
    associated: list[AssociatedContact], label: str | None, expected: list[str]
) -> None:
    assert order_contacts(associated, label) == expected


# --- values of the other contacts ---------------------------------------------------------------------
def test_the_contact_members_are_the_primarys_mapped_fields() -> None:
    members = contact_members(load_config())
    assert {m: f.name for m, f in members.items()} == {
        "Email": "contact_email",
        "FirstName": "contact_first_name",
        "LastName": "contact_last_name",
        "Phone": "contact_phone",
        "BusinessTitle": "contact_job_title",
    }


def test_other_contacts_get_the_primarys_transforms_in_order() -> None:
    built = other_contacts_request(
        [
            _contact("2", email="Bo@Example.com", firstname="Bo", lastname="Berg", phone="(415) 555-0134"),
            _contact("3", email="cy@example.com", jobtitle="CTO"),
        ],
        load_config(),
        primary_email="ann@example.com",
    )
    assert built.warnings == []
    assert built.contacts == [
        # The e-mail transform lower-cases; a phone without a country code gets the default region (US).
        {"Email": "bo@example.com", "FirstName": "Bo", "LastName": "Berg", "Phone": "+14155550134"},
        {"Email": "cy@example.com", "BusinessTitle": "CTO"},
    ]


def test_a_contact_without_a_valid_email_is_left_out_with_the_rule_not_the_value() -> None:
    built = other_contacts_request(
        [
            _contact("2", email="not-an-address", firstname="Secret"),
            _contact("3", firstname="Nameless"),
            _contact("4", email="dee@example.com"),
        ],
        load_config(),
    )
    assert built.contacts == [{"Email": "dee@example.com"}]
    assert len(built.warnings) == 2
    assert built.warnings[0].startswith("contact 2: contact_email: ")
    assert built.warnings[1] == "contact 3: contact_email: is empty; contact left out"
    text = " ".join(built.warnings)
    for value in ("not-an-address", "Secret", "Nameless"):
        assert value not in text


def test_an_invalid_member_is_dropped_but_the_contact_is_sent() -> None:
    built = other_contacts_request(
        [_contact("2", email="eve@example.com", phone="12", lastname="x" * 81)], load_config()
    )
    assert built.contacts == [{"Email": "eve@example.com"}]
    assert sorted(w.split(": ")[1] for w in built.warnings) == ["contact_last_name", "contact_phone"]
    assert all(w.endswith("member left out") for w in built.warnings)


def test_the_primarys_email_and_repeats_are_not_sent_twice() -> None:
    built = other_contacts_request(
        [
            _contact("2", email="ANN@example.com"),
            _contact("3", email="fay@example.com"),
            _contact("4", email="fay@example.com"),
        ],
        load_config(),
        primary_email="ann@example.com",
    )
    assert built.contacts == [{"Email": "fay@example.com"}]
    assert [w.split(";")[0] for w in built.warnings] == [
        "contact 2: contact_email: repeats an e-mail already sent",
        "contact 4: contact_email: repeats an e-mail already sent",
    ]


def test_at_most_max_contacts_are_sent_primary_included() -> None:
    cfg = load_config(overrides={"deal_contacts": {"max_contacts": 3}})
    built = other_contacts_request(
        [_contact(str(i), email=f"c{i}@example.com") for i in range(2, 6)], cfg, primary_email="p@example.com"
    )
    assert [c["Email"] for c in built.contacts] == ["c2@example.com", "c3@example.com"]
    assert len(built.warnings) == 2
    assert all("over deal_contacts.max_contacts (3)" in w for w in built.warnings)


# --- requests -----------------------------------------------------------------------------------------
def _writer() -> PartnerCentralWriter:
    # create_request makes no call: no API client is needed.
    return PartnerCentralWriter(load_config(), None, "AWS")  # type: ignore[arg-type]


def test_a_create_request_carries_every_contact_primary_first() -> None:
    others = [{"Email": "bo@example.com", "FirstName": "Bo"}, {"Email": "cy@example.com"}]
    request, _held, _sent = _writer().create_request(
        "901",
        {"project_title": "Lift and shift", "contact_email": "ann@example.com", "contact_first_name": "Ann"},
        other_contacts=others,
    )
    assert request["Customer"]["Contacts"] == [
        {"Email": "ann@example.com", "FirstName": "Ann"},
        {"Email": "bo@example.com", "FirstName": "Bo"},
        {"Email": "cy@example.com"},
    ]


def test_without_a_primary_the_others_are_not_sent() -> None:
    # The first of them would read back as the primary next run and look like a Partner Central edit.
    request, _held, _sent = _writer().create_request(
        "902", {"project_title": "Lift and shift"}, other_contacts=[{"Email": "bo@example.com"}]
    )
    assert "Contacts" not in (request.get("Customer") or {})


def test_the_primary_stays_what_the_mapped_fields_read() -> None:
    request, _held, _sent = _writer().create_request(
        "903", {"contact_email": "ann@example.com"}, other_contacts=[{"Email": "bo@example.com"}]
    )
    read_back = opportunities_to_frame([{**request, "Id": "O903"}], load_config())
    assert read_back.at["O903", "contact_email"] == "ann@example.com"


def _current() -> dict[str, Any]:
    return {
        "Id": "O1",
        "Catalog": "AWS",
        "LastModifiedDate": "2026-12-01T00:00:00Z",
        "Customer": {
            "Account": {"CompanyName": "Acme"},
            "Contacts": [
                {"Email": "ann@example.com", "FirstName": "Ann"},
                {"Email": "pc.added@example.com", "LastName": "Added"},
            ],
        },
    }


def test_an_update_keeps_partner_centrals_other_contacts() -> None:
    # UpdateOpportunity replaces the whole record: a primary change must not drop Contacts[1..].
    request = merge_into_opportunity(_current(), {"contact_first_name": "Anne"}, load_config())
    assert with_other_contacts(request, None) is False
    assert request["Customer"]["Contacts"] == [
        {"Email": "ann@example.com", "FirstName": "Anne"},
        {"Email": "pc.added@example.com", "LastName": "Added"},
    ]


def test_other_contacts_replace_those_after_the_primary_only() -> None:
    request = merge_into_opportunity(_current(), {}, load_config())
    assert with_other_contacts(request, [{"Email": "bo@example.com"}]) is True
    assert request["Customer"]["Contacts"] == [
        {"Email": "ann@example.com", "FirstName": "Ann"},
        {"Email": "bo@example.com"},
    ]
    assert with_other_contacts(request, []) is True
    assert request["Customer"]["Contacts"] == [{"Email": "ann@example.com", "FirstName": "Ann"}]


# --- merge with Partner Central's own -----------------------------------------------------------------
def test_a_first_read_adds_the_deals_contacts_and_removes_none() -> None:
    # AWS's referral contact and a console addition are people the deal never had: they stay, after.
    current = [{"Email": "aws.ref@example.com"}, {"Email": "Bo@Example.com", "FirstName": "Old"}]
    hubspot = [{"Email": "bo@example.com", "FirstName": "Bo"}, {"Email": "cy@example.com"}]
    merged = merge_other_contacts(hubspot, current, primary_email="ann@example.com")
    assert merged == [
        {"Email": "bo@example.com", "FirstName": "Bo"},  # HubSpot's values win for its own contacts
        {"Email": "cy@example.com"},
        {"Email": "aws.ref@example.com"},
    ]


def test_only_contacts_the_sync_sent_and_the_deal_lost_are_removed() -> None:
    current = [
        {"Email": "old.mo@example.com"},
        {"Email": "olga@example.com"},
        {"Email": "aws.ref@example.com"},
    ]
    # Mo's e-mail was edited in HubSpot (old one dropped), Olga left the deal (dropped).
    merged = merge_other_contacts(
        [{"Email": "new.mo@example.com"}], current, dropped=["old.mo@example.com", "olga@example.com"]
    )
    assert [c["Email"] for c in merged] == ["new.mo@example.com", "aws.ref@example.com"]
    assert emails_of([{"Email": "A@X.example"}, {"FirstName": "no e-mail"}]) == ["a@x.example"]


# -- Partner Central's edits of other contacts, back to HubSpot (three-way) --------------------------
_OLGA = {"Email": "olga@example.com", "FirstName": "Olga", "LastName": "Oldest", "BusinessTitle": "Buyer"}


def test_a_member_edited_in_partner_central_only_goes_to_the_hubspot_contact() -> None:
    from cosell_sync.deal_contacts import partner_central_contact_changes

    now = [{**_OLGA, "BusinessTitle": "CTO", "Phone": "+14155550100"}]
    found = partner_central_contact_changes({"olga@example.com": _OLGA}, now, None, load_config())
    assert found.to_hubspot == {
        "olga@example.com": {"contact_job_title": "CTO", "contact_phone": "+14155550100"}
    }
    assert found.positions == {"olga@example.com": 2}
    assert found.conflicts == []


def test_a_member_cleared_in_partner_central_clears_the_hubspot_property() -> None:
    from cosell_sync.deal_contacts import partner_central_contact_changes
    from cosell_sync.mapping import changes_to_hubspot

    now = [{k: v for k, v in _OLGA.items() if k != "BusinessTitle"}]
    found = partner_central_contact_changes({"olga@example.com": _OLGA}, now, None, load_config())
    changes = found.to_hubspot["olga@example.com"]
    assert changes == {"contact_job_title": None}
    assert changes_to_hubspot(changes, load_config()) == {"contact": {"jobtitle": ""}}


def test_unchanged_new_or_agreed_the_same_way_contacts_write_nothing() -> None:
    from cosell_sync.deal_contacts import partner_central_contact_changes

    cfg = load_config()
    agreed = {"olga@example.com": _OLGA}
    added_by_aws = {"Email": "aws.rep@amazon.example", "FirstName": "Ann"}
    assert not partner_central_contact_changes(agreed, [_OLGA, added_by_aws], None, cfg).to_hubspot
    same_both_ways = {**_OLGA, "BusinessTitle": "CTO"}
    found = partner_central_contact_changes(agreed, [same_both_ways], [same_both_ways], cfg)
    assert found.to_hubspot == {}
    assert found.conflicts == []
    # The e-mail is the key: an e-mail edited in the console is another contact, not a change.
    moved = {**_OLGA, "Email": "olga.new@example.com", "FirstName": "Olgaa"}
    assert not partner_central_contact_changes(agreed, [moved], None, cfg).to_hubspot


@pytest.mark.parametrize(
    ("strategy", "kept", "written"),
    [
        ("last_write_wins", "hubspot", {}),
        ("partner_central_wins", "partner_central", {"contact_job_title": "CTO"}),
    ],
)
def test_a_member_changed_on_both_sides_is_a_conflict_decided_by_the_fields_strategy(
    strategy: str, kept: str, written: dict[str, str]
) -> None:
    from cosell_sync.deal_contacts import partner_central_contact_changes

    cfg = load_config(overrides={"conflicts": {"field_strategies": {"contact_job_title": strategy}}})
    found = partner_central_contact_changes(
        {"olga@example.com": _OLGA},
        [{**_OLGA, "BusinessTitle": "CTO"}],
        [{**_OLGA, "BusinessTitle": "CEO"}],
        cfg,
    )
    assert found.conflicts == [
        {
            "email": "olga@example.com",
            "position": 2,
            "field": "contact_job_title",
            "pc": "CTO",
            "hs": "CEO",
            "kept": kept,
        }
    ]
    assert found.to_hubspot.get("olga@example.com", {}) == written


def test_a_partner_central_edit_is_kept_in_the_contacts_the_same_run_sends_back() -> None:
    """The deal's contacts were read this run (one was added in HubSpot): the update sends them, and
    must carry the console's edit of another contact rather than HubSpot's old value."""
    import json

    import pandas as pd

    from cosell_sync.deal_contacts import AGREED_COLUMN, PC_OTHER_CONTACTS_COLUMN, agreed_of
    from cosell_sync.plan import Plan, _plan_contacts_back

    cfg = load_config()
    edited = {**_OLGA, "BusinessTitle": "CTO"}
    added = {"Email": "nia@example.com", "FirstName": "Nia"}
    base = pd.DataFrame({AGREED_COLUMN: [agreed_of([_OLGA])]}, index=["O1"])
    pc = pd.DataFrame({PC_OTHER_CONTACTS_COLUMN: [json.dumps([edited])]}, index=["O1"])
    plan = Plan(other_contacts={"O1": [dict(_OLGA), added]})

    _plan_contacts_back(plan, cfg, base, pc)

    assert plan.contacts_to_hubspot == {"O1": {"olga@example.com": {"contact_job_title": "CTO"}}}
    assert plan.other_contacts["O1"] == [edited, added]
    assert plan.contact_conflicts == []
