"""Companies and contacts as a seller meets them, one company or contact behind several co-sell deals.

``dag.test()`` of ``cosell_reconcile`` against both emulators and moto (issue 13, "Done when"):

1. one HubSpot company with three co-sell deals: a rename reaches ``Customer.Account.CompanyName`` of all
   three opportunities in one run, one ``UpdateOpportunity`` each;
2. a contact shared by two deals: an e-mail change reaches ``Customer.Contacts`` of both opportunities;
3. a company field Partner Central locks after ``Approved`` (the website), edited in HubSpot: Partner
   Central's value goes back to the company and the deal gets a note saying why;
4. one company edited on both sides (HubSpot name, the ``CompanyName`` of one of its two opportunities):
   the conflict strategy decides for the company as a whole, never a split between its opportunities;
   two of its opportunities renamed in the console to different names are a conflict on each deal;
5. customer accounts (opt-in): created once per company of a co-sell deal, AWS's enrichment written back to
   the company, a duplicate customer match one task on the company.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import yaml
from scenarios import approved, canonical_hs, canonical_pc, set_hs, set_pc, synced_book, writes

from tests.hubspot_reads import deal_notes

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

HEADERS = {"Authorization": "Bearer test-token"}
#: What makes a seeded HubSpot deal a co-sell deal Partner Central accepts as a new opportunity.
COSELL_DEAL = {
    "aws_sync_enabled": "true",
    "dealstage": "qualifiedtobuy",
    "closedate": "2027-06-30T00:00:00.000Z",
}


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def _cosell_deals_of_one_company(stack: Any, deals: int, seed: int) -> dict[str, Any]:
    """``deals`` co-sell deals of one company, each with that company's one contact (HubSpot seed)."""
    seeded = stack.hs_control(
        "seed",
        {"deals": deals, "companies": 1, "contacts": 1, "seed": seed, "deal_properties": COSELL_DEAL},
    )
    assert len(seeded["companies"]) == 1
    assert len(seeded["contacts"]) == 1
    for deal_id in seeded["deals"]:
        assert _associated(stack, "deals", deal_id, "companies") == seeded["companies"]
        assert _associated(stack, "deals", deal_id, "contacts") == seeded["contacts"]
    return seeded


def _associated(stack: Any, from_plural: str, from_id: str, to_plural: str) -> list[str]:
    r = requests.get(
        f"{stack.hs_url}/crm/v4/objects/{from_plural}/{from_id}/associations/{to_plural}",
        headers=HEADERS,
        timeout=30,
    )
    r.raise_for_status()
    return sorted(str(a["toObjectId"]) for a in r.json()["results"])


def _get(stack: Any, plural: str, object_id: str, properties: list[str]) -> dict[str, Any]:
    r = requests.get(
        f"{stack.hs_url}/crm/v3/objects/{plural}/{object_id}",
        headers=HEADERS,
        params={"properties": ",".join(properties)},
        timeout=30,
    )
    r.raise_for_status()
    return dict(r.json()["properties"])


def _patch(stack: Any, plural: str, object_id: str, properties: dict[str, str]) -> None:
    r = requests.patch(
        f"{stack.hs_url}/crm/v3/objects/{plural}/{object_id}",
        headers=HEADERS,
        json={"properties": properties},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def _opportunity_of(stack: Any, deal_id: str) -> str:
    props = _get(stack, "deals", deal_id, ["aws_opportunity_id", "aws_sync_error"])
    assert props.get("aws_opportunity_id"), (
        f"deal {deal_id} has no opportunity: {props.get('aws_sync_error')}"
    )
    return str(props["aws_opportunity_id"])


def _account(stack: Any, oid: str) -> dict[str, Any]:
    return dict(stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)["Customer"]["Account"])


def _contact_emails(stack: Any, oid: str) -> list[str]:
    contacts = stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)["Customer"].get("Contacts") or []
    return [c.get("Email") for c in contacts]


def _entries(stack: Any, oid: str, run: Any, action: str) -> list[dict[str, Any]]:
    return [e for e in stack.audit(oid) if e["action"] == action and e["metadata"]["runId"] == run.run_id]


def _config_with_customer_accounts(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped configuration with the opt-in customer accounts step switched on."""
    from cosell_sync.schedule import DEFAULT_CONFIG_PATH

    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data["customer_accounts"]["enabled"] = True
    path = tmp_path / "sync_config.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("COSELL_SYNC_CONFIG", str(path))


def _company_tasks(stack: Any, company_id: str) -> list[str]:
    ids = _associated(stack, "companies", company_id, "tasks")
    if not ids:
        return []
    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/tasks/batch/read",
        headers=HEADERS,
        json={"inputs": [{"id": i} for i in ids], "properties": ["hs_task_body", "hs_task_subject"]},
        timeout=30,
    )
    r.raise_for_status()
    return [str(t["properties"].get("hs_task_body") or "") for t in r.json()["results"]]


# ---------------------------------------------------------------------------------------------------
# 1. a company rename reaches every opportunity of the company, in one run
# ---------------------------------------------------------------------------------------------------
def test_a_company_rename_reaches_all_three_opportunities_in_one_run(sync_stack: Any) -> None:
    seeded = _cosell_deals_of_one_company(sync_stack, deals=3, seed=21)
    (company,) = seeded["companies"]
    report = sync_stack.report(sync_stack.run())
    assert report["hubspot_to_partner_central"]["created"] == 3
    oids = [_opportunity_of(sync_stack, d) for d in seeded["deals"]]
    assert len(set(oids)) == 3
    before = {oid: _account(sync_stack, oid) for oid in oids}

    _patch(sync_stack, "companies", company, {"name": "Renamed Holdings Inc"})
    sync_stack.reset_calls()
    run = sync_stack.run()

    for oid in oids:
        account = _account(sync_stack, oid)
        assert account["CompanyName"] == "Renamed Holdings Inc", oid
        # UpdateOpportunity replaces the whole record: the rest of the account is kept.
        assert {k: v for k, v in account.items() if k != "CompanyName"} == {
            k: v for k, v in before[oid].items() if k != "CompanyName"
        }
        [entry] = _entries(sync_stack, oid, run, "UPDATE_OPPORTUNITY")
        assert entry["success"] is True
        assert set(entry["changes"]) == {"company_name"}
    # One full-record update per opportunity, and nothing else written to Partner Central.
    assert writes(sync_stack)[0] == {"UpdateOpportunity": 3}
    # HubSpot's company is not written back (it is where the change came from).
    assert _get(sync_stack, "companies", company, ["name"])["name"] == "Renamed Holdings Inc"


# ---------------------------------------------------------------------------------------------------
# 2. a contact change reaches every opportunity whose deal has that contact
# ---------------------------------------------------------------------------------------------------
def test_a_contact_email_change_reaches_every_opportunity_with_that_contact(sync_stack: Any) -> None:
    # The contact is each deal's only contact (the primary-first ordering of several is another test's).
    seeded = _cosell_deals_of_one_company(sync_stack, deals=2, seed=23)
    (contact,) = seeded["contacts"]
    sync_stack.run()
    oids = [_opportunity_of(sync_stack, d) for d in seeded["deals"]]
    old_email = _get(sync_stack, "contacts", contact, ["email"])["email"]
    assert all(_contact_emails(sync_stack, oid) == [old_email] for oid in oids)

    _patch(sync_stack, "contacts", contact, {"email": "robin.changed@customer-new.example.com"})
    sync_stack.reset_calls()
    run = sync_stack.run()

    for oid in oids:
        assert _contact_emails(sync_stack, oid) == ["robin.changed@customer-new.example.com"], oid
        [entry] = _entries(sync_stack, oid, run, "UPDATE_OPPORTUNITY")
        assert set(entry["changes"]) == {"contact_email"}
    assert writes(sync_stack)[0] == {"UpdateOpportunity": 2}


# ---------------------------------------------------------------------------------------------------
# 3. a company field locked after Approved goes back to HubSpot, with a note saying why
# ---------------------------------------------------------------------------------------------------
def test_a_locked_company_field_edited_after_approval_is_written_back_with_a_note(sync_stack: Any) -> None:
    ids = synced_book(sync_stack, 8)
    oid = approved(sync_stack, ids)
    website = canonical_pc(sync_stack, oid)["company_website"]
    assert website
    deal_id = sync_stack.deal_by_opportunity(oid)["id"]
    (company,) = _associated(sync_stack, "deals", deal_id, "companies")

    set_hs(sync_stack, oid, {"company_website": "https://www.renamed-after-approval.example.com"})
    sync_stack.reset_calls()
    run = sync_stack.run()

    # Partner Central keeps its value (it refuses the change after approval) and HubSpot shows it again.
    assert canonical_pc(sync_stack, oid)["company_website"] == website
    assert canonical_hs(sync_stack, oid)["company_website"] == website
    assert _get(sync_stack, "companies", company, ["website"])["website"] == website
    assert "UpdateOpportunity" not in writes(sync_stack)[0]
    [skipped] = _entries(sync_stack, oid, run, "SKIPPED")
    assert "company_website" in skipped["changes"]
    assert "LOCKED_AFTER_APPROVAL" in str(skipped["metadata"])
    # The deal's note names the property and says why HubSpot's value was replaced.
    [note] = deal_notes(sync_stack.hs_url, deal_id, "website")
    assert "locked" in note.lower()
    assert "approv" in note.lower()
    assert "renamed-after-approval" not in note


# ---------------------------------------------------------------------------------------------------
# 4. one company edited on both sides: the strategy decides for the company, never a split
# ---------------------------------------------------------------------------------------------------
def test_a_company_edited_on_both_sides_is_one_decision_for_all_its_opportunities(sync_stack: Any) -> None:
    """Default strategy (last-write-wins): the later edit wins everywhere, in the same run.

    The company is shared by two opportunities; HubSpot renames the company, then Partner Central renames
    the first opportunity's customer. Partner Central's edit is the later one: the company and *both*
    opportunities take it. A per-opportunity decision would send HubSpot's name to the second opportunity
    while writing Partner Central's over it on the company: a silent last write between the two.
    """
    seeded = _cosell_deals_of_one_company(sync_stack, deals=2, seed=29)
    (company,) = seeded["companies"]
    sync_stack.run()
    first, second = (_opportunity_of(sync_stack, d) for d in seeded["deals"])

    _patch(sync_stack, "companies", company, {"name": "HubSpot Name Inc"})
    time.sleep(1.1)  # distinct modification times (whole seconds on both sides), so "last" is defined
    set_pc(sync_stack, first, {"company_name": "Partner Central Name Inc"})
    run = sync_stack.run()

    names = {
        "hubspot": _get(sync_stack, "companies", company, ["name"])["name"],
        first: _account(sync_stack, first)["CompanyName"],
        second: _account(sync_stack, second)["CompanyName"],
    }
    assert names == dict.fromkeys(names, "Partner Central Name Inc")
    # On record: Partner Central's name written to HubSpot for the first, and sent to the second.
    [to_hubspot] = _entries(sync_stack, first, run, "UPDATE_DEAL")
    assert to_hubspot["changes"]["company_name"]["new"] == "Partner Central Name Inc"
    [to_pc] = _entries(sync_stack, second, run, "UPDATE_OPPORTUNITY")
    assert to_pc["changes"]["company_name"]["new"] == "Partner Central Name Inc"


def test_opportunities_of_one_company_edited_to_different_values_are_a_conflict(sync_stack: Any) -> None:
    """Two console edits of one company's name, different values: a person decides, nothing is written.

    HubSpot keeps one name per company. Writing either console value to it would be a silent last write
    (the other opportunity's edit lost, or sent back over it), so each deal gets a ``SHARED_RECORD``
    conflict, its task and ``aws_conflict_status = Pending``; the field is frozen until it is resolved, and
    a second run opens nothing new.
    """
    from cosell_sync.config import load_config
    from cosell_sync.conflict_store import ConflictStore

    seeded = _cosell_deals_of_one_company(sync_stack, deals=2, seed=31)
    (company,) = seeded["companies"]
    sync_stack.run()
    first, second = (_opportunity_of(sync_stack, d) for d in seeded["deals"])
    name_before = _get(sync_stack, "companies", company, ["name"])["name"]

    set_pc(sync_stack, first, {"company_name": "Console Name One Inc"})
    set_pc(sync_stack, second, {"company_name": "Console Name Two Inc"})
    run = sync_stack.run()

    store = ConflictStore(sync_stack.aws("dynamodb"), load_config().storage.state_table, "AWS")
    pending = {(c["opportunity_id"], c["field"], c["conflict_type"]) for c in store.pending()}
    assert pending == {(first, "company_name", "SHARED_RECORD"), (second, "company_name", "SHARED_RECORD")}
    # Nothing written: the company keeps its name, each opportunity its own console edit.
    assert _get(sync_stack, "companies", company, ["name"])["name"] == name_before
    assert _account(sync_stack, first)["CompanyName"] == "Console Name One Inc"
    assert _account(sync_stack, second)["CompanyName"] == "Console Name Two Inc"
    for oid in (first, second):
        assert not [
            e for e in _entries(sync_stack, oid, run, "UPDATE_DEAL") if "company_name" in e["changes"]
        ]
    tasks = {d: _associated(sync_stack, "deals", d, "tasks") for d in seeded["deals"]}
    assert all(len(ids) == 1 for ids in tasks.values()), tasks
    for deal_id in seeded["deals"]:
        assert _get(sync_stack, "deals", deal_id, ["aws_conflict_status"])["aws_conflict_status"] == "Pending"

    sync_stack.run()  # the field is frozen: no second task, no write
    assert {d: _associated(sync_stack, "deals", d, "tasks") for d in seeded["deals"]} == tasks
    assert _get(sync_stack, "companies", company, ["name"])["name"] == name_before
    assert len(store.pending()) == 2


# ---------------------------------------------------------------------------------------------------
# 5. customer accounts: created once, enriched, written back; a duplicate match is one task
# ---------------------------------------------------------------------------------------------------
def test_customer_accounts_created_once_enriched_and_a_duplicate_match_is_one_task(
    sync_stack: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config_with_customer_accounts(tmp_path, monkeypatch)
    sync_stack.pc_control(
        "customer-directory",
        {
            "domain": "northwind-customer.com",
            "account_name": "Northwind Traders",
            "industry": "Retail and Wholesale",
            "sub_industry": "Grocery",
            "segment": "Mid-Market",
            "company_size": "501-1000",
            "region": "EMEA",
            "eligible_programs": ["MAP", "Migration Acceleration"],
            "marketplace_engagement_score": "Medium",
        },
    )
    # Two HubSpot companies for one customer (same domain), each with a co-sell deal.
    companies = []
    for seed in (31, 37):
        (company,) = _cosell_deals_of_one_company(sync_stack, deals=1, seed=seed)["companies"]
        _patch(
            sync_stack,
            "companies",
            company,
            {"domain": "northwind-customer.com", "website": "https://www.northwind-customer.com"},
        )
        companies.append(company)

    sync_stack.reset_calls()
    sync_stack.run()
    assert writes(sync_stack)[0].get("CreateCustomerAccount") == 2
    accounts = {
        c: _get(sync_stack, "companies", c, ["aws_customer_account_id", "aws_enrichment_status"])
        for c in companies
    }
    assert all(p["aws_customer_account_id"] for p in accounts.values())
    assert len({p["aws_customer_account_id"] for p in accounts.values()}) == 2
    assert {p["aws_enrichment_status"] for p in accounts.values()} == {"PENDING"}

    # AWS finishes matching (no event: the next run polls the pending accounts).
    sync_stack.pc_control("clock", {"advance_seconds": 120})
    sync_stack.reset_calls()
    sync_stack.run()
    assert "CreateCustomerAccount" not in writes(sync_stack)[0]
    props = [
        "aws_customer_account_id",
        "aws_enrichment_status",
        "aws_customer_segment",
        "aws_customer_industry",
        "aws_customer_sub_industry",
        "aws_customer_company_size",
        "aws_customer_region",
        "aws_eligible_programs",
        "aws_marketplace_engagement_score",
    ]
    after = {c: _get(sync_stack, "companies", c, props) for c in companies}
    statuses = sorted(p["aws_enrichment_status"] for p in after.values())
    assert statuses == ["ACTION_REQUIRED", "ENRICHED"]
    enriched = next(c for c in companies if after[c]["aws_enrichment_status"] == "ENRICHED")
    duplicate = next(c for c in companies if c != enriched)
    assert {p: after[enriched][p] for p in props[2:]} == {
        "aws_customer_segment": "Mid-Market",
        "aws_customer_industry": "Retail and Wholesale",
        "aws_customer_sub_industry": "Grocery",
        "aws_customer_company_size": "501-1000",
        "aws_customer_region": "EMEA",
        "aws_eligible_programs": "MAP; Migration Acceleration",
        "aws_marketplace_engagement_score": "Medium",
    }
    assert after[enriched]["aws_customer_account_id"] == accounts[enriched]["aws_customer_account_id"]
    # The duplicate: one task on its company, naming the account that already maps the customer.
    [task] = _company_tasks(sync_stack, duplicate)
    assert after[enriched]["aws_customer_account_id"] in task
    assert _company_tasks(sync_stack, enriched) == []
