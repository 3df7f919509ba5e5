"""``cosell_sync.customer_accounts`` against both emulators (real hooks) and moto S3/DynamoDB, no Airflow.

What a seller notices: each company of a co-sell deal gets one AWS customer account (a retried run makes no
second one), AWS's enrichment shows up on the company, a duplicate match becomes one task on the company, a
company edit updates the account, and a run where nothing changed costs no API call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
import requests

from cosell_sync.config import load_config
from cosell_sync.customer_accounts import (
    STATE_NAME,
    CompanyDataError,
    account_data,
    client_token,
    sync_customer_accounts,
)
from cosell_sync.env import SyncEnv
from cosell_sync.setup import ensure_properties
from cosell_sync.storage import StepState

HEADERS = {"Authorization": "Bearer t"}
CA_OPS = ("CreateCustomerAccount", "UpdateCustomerAccount", "GetCustomerAccount")
PROPS = (
    "aws_customer_account_id,aws_enrichment_status,aws_customer_segment,aws_customer_industry,"
    "aws_customer_sub_industry,aws_customer_company_size,aws_customer_region,aws_eligible_programs,"
    "aws_marketplace_engagement_score,name"
)


class Stack:
    """The env and the two emulators' URLs, with the reads a test asserts on."""

    def __init__(self, env: SyncEnv, pc_url: str, hs_url: str) -> None:
        self.env, self.pc_url, self.hs_url = env, pc_url, hs_url
        self.links: dict[str, tuple[str, str, str]] = {}  # opportunity -> (deal, company, name)

    def pc_calls(self) -> dict[str, int]:
        got = requests.get(f"{self.pc_url}/_emulator/calls", timeout=10).json()["by_operation"]
        return {op: int(got.get(op, 0)) for op in CA_OPS}

    def accounts(self) -> list[dict[str, Any]]:
        pc = self.env.partner_central
        found = pc.call("search_customer_accounts", Catalog="AWS")["CustomerAccountSummaries"]
        return [pc.call("get_customer_account", Catalog="AWS", Identifier=a["Id"]) for a in found]

    def company(self, company_id: str) -> dict[str, Any]:
        r = requests.get(
            f"{self.hs_url}/crm/v3/objects/companies/{company_id}",
            params={"properties": PROPS},
            headers=HEADERS,
            timeout=10,
        )
        return r.json()["properties"]

    def new_company(self, name: str, domain: str, **props: str) -> str:
        body = {"properties": {"name": name, "domain": domain, "website": f"https://www.{domain}", **props}}
        r = requests.post(f"{self.hs_url}/crm/v3/objects/companies", json=body, headers=HEADERS, timeout=10)
        r.raise_for_status()
        return str(r.json()["id"])

    def rename(self, company_id: str, name: str) -> None:
        r = requests.patch(
            f"{self.hs_url}/crm/v3/objects/companies/{company_id}",
            json={"properties": {"name": name}},
            headers=HEADERS,
            timeout=10,
        )
        r.raise_for_status()

    def link(self, oid: str, company_id: str, name: str) -> None:
        """A co-sell deal of the company, and the baseline a commit leaves for it."""
        r = requests.post(
            f"{self.hs_url}/crm/v3/objects/deals",
            json={"properties": {"dealname": name, "aws_opportunity_id": oid}},
            headers=HEADERS,
            timeout=10,
        )
        self.links[oid] = (str(r.json()["id"]), company_id, name)
        self.commit()

    def commit(self) -> None:
        oids = sorted(self.links)
        frame = pd.DataFrame(
            {
                "deal_id": [self.links[o][0] for o in oids],
                "company_id": [self.links[o][1] for o in oids],
                "company_name": [self.links[o][2] for o in oids],
            },
            index=pd.Index(oids, name="opportunity_id"),
        )
        self.env.baseline.commit(frame, f"manual__base{len(oids)}")

    def company_tasks(self, company_id: str) -> list[str]:
        r = requests.get(
            f"{self.hs_url}/crm/v4/objects/companies/{company_id}/associations/tasks",
            headers=HEADERS,
            timeout=10,
        )
        ids = [str(x["toObjectId"]) for x in r.json().get("results") or []]
        if not ids:
            return []
        r = requests.post(
            f"{self.hs_url}/crm/v3/objects/tasks/batch/read",
            headers=HEADERS,
            json={"inputs": [{"id": i} for i in ids], "properties": ["hs_task_body"]},
            timeout=10,
        )
        return [str(t["properties"]["hs_task_body"]) for t in r.json()["results"]]

    def audit_actions(self, oid: str) -> list[str]:
        return sorted(e["action"] for e in self.env.audit.history(oid) if "CUSTOMER_ACCOUNT" in e["action"])

    def forget_state(self) -> None:
        """As if the task died before saving anything (its retry starts from no state)."""
        state = StepState(self.env.snapshots, "AWS", STATE_NAME)
        state.save_frame(pd.DataFrame(index=pd.Index([], name="company_id")))
        state.save_meta({})


@pytest.fixture
def stack(pc_emulator: Any, hubspot_emulator: Any, make_sync_env: Callable[..., SyncEnv]) -> Stack:
    base = load_config()
    # Opt-in in the shipped config (it creates an account per linked company): on for these tests.
    cfg = base.model_copy(
        update={"customer_accounts": base.customer_accounts.model_copy(update={"enabled": True})}
    )
    env = make_sync_env(cfg)
    ensure_properties(cfg, env.hubspot)
    # Matching finishes at the first read after the create (the emulator's default waits a minute).
    requests.post(f"{pc_emulator.url}/_emulator/config", json={"enrichment_delay_ms": 0}, timeout=10)
    return Stack(env, pc_emulator.url, hubspot_emulator.url)


def _run(run_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "catalog": "AWS",
        "started_at": "2026-12-06T10:00:00.000Z",
        "direction": "both",
        **extra,
    }


def test_account_data_maps_the_company() -> None:
    cfg = load_config()
    props = {
        "name": " AnyCompany ",
        "domain": "WWW.AnyCompany.com",
        "website": "https://anycompany.com",
        "industry": "COMPUTER_SOFTWARE",
        "city": "Seattle",
        "country": "United States",
        "duns": "123-456-789",
    }
    data = account_data(props, cfg, "duns")
    assert data["CompanyName"] == "AnyCompany"
    assert data["Domain"] == "anycompany.com"
    assert data["WebsiteUrl"] == "https://anycompany.com"
    assert data["Industry"] == "Software and Internet"
    assert data["Address"] == {"City": "Seattle", "CountryCode": "US"}
    assert data["Duns"] == "123456789"
    assert "Duns" not in account_data({**props, "duns": "12345"}, cfg, "duns")
    assert "Domain" not in account_data({**props, "domain": "not a domain"}, cfg, None)
    with pytest.raises(CompanyDataError, match=r"^name: missing") as err:
        account_data({**props, "name": "  "}, cfg, None)
    assert "anycompany" not in str(err.value).lower()
    assert client_token("AWS", "42") == client_token("AWS", "42") != client_token("AWS", "43")


def test_created_once_enriched_and_written_back(stack: Stack) -> None:
    cid = stack.new_company("AnyCompany", "anycompany.com", industry="COMPUTER_SOFTWARE")
    stack.link("O100", cid, "AnyCompany")

    first = sync_customer_accounts(stack.env, _run("manual__c1"))
    assert (first["created"], first["failed"]) == (1, 0)
    [account] = stack.accounts()
    assert account["PartnerAccountIdentifier"] == cid
    assert account["Account"]["Domain"] == "anycompany.com"
    assert stack.company(cid)["aws_customer_account_id"] == account["Id"]
    assert stack.company(cid)["aws_enrichment_status"] == "PENDING"

    # The task died before saving its state: the retry sends the same token, AWS gives the same account.
    stack.forget_state()
    again = sync_customer_accounts(stack.env, _run("manual__c1"))
    assert again["created"] == 1
    assert [a["Id"] for a in stack.accounts()] == [account["Id"]]

    # A later run reads the pending account and writes AWS's view to the company.
    later = sync_customer_accounts(stack.env, _run("manual__c2"))
    assert (later["polled"], later["matched"], later["created"]) == (1, 1, 0)
    props = stack.company(cid)
    assert props["aws_enrichment_status"] == "ENRICHED"
    assert props["aws_customer_segment"] == "Enterprise"
    assert props["aws_customer_industry"] == "Software and Internet"
    assert props["aws_customer_sub_industry"] == "SaaS"
    assert props["aws_customer_company_size"] == "1001-5000"
    assert props["aws_customer_region"] == "NAMER"
    assert props["aws_eligible_programs"] == "MAP; ISV Accelerate"
    assert props["aws_marketplace_engagement_score"] == "High"
    assert stack.audit_actions("O100") == ["CREATE_CUSTOMER_ACCOUNT", "CUSTOMER_ACCOUNT_MATCH"]

    # Nothing changed and nothing pending: no call of any kind.
    calls = stack.pc_calls()
    quiet = sync_customer_accounts(stack.env, _run("manual__c3"))
    assert quiet["api_calls"] == {}
    assert stack.pc_calls() == calls

    # The company is renamed: one UpdateCustomerAccount, AWS matches again, the new result is written.
    stack.rename(cid, "AnyCompany Holdings")
    stack.links["O100"] = (stack.links["O100"][0], cid, "AnyCompany Holdings")
    stack.commit()
    changed = sync_customer_accounts(stack.env, _run("manual__c4"))
    assert (changed["updated"], changed["created"]) == (1, 0)
    [account] = stack.accounts()
    assert account["Account"]["CompanyName"] == "AnyCompany Holdings"
    assert stack.pc_calls()["UpdateCustomerAccount"] == calls["UpdateCustomerAccount"] + 1
    assert stack.company(cid)["aws_enrichment_status"] == "PENDING"
    sync_customer_accounts(stack.env, _run("manual__c5"))
    assert stack.company(cid)["aws_enrichment_status"] == "ENRICHED"
    assert "UPDATE_CUSTOMER_ACCOUNT" in stack.audit_actions("O100")
    assert stack.pc_calls()["CreateCustomerAccount"] == 2  # the first run and its retry, one account


def test_an_account_deleted_in_partner_central_is_replaced_once(stack: Stack) -> None:
    """Someone deletes the company's account in Partner Central: the sync's next update finds it gone,
    records that, and the run after creates one new account (its own token), written to the company."""
    cid = stack.new_company("Example Corp", "example-corp.com")
    stack.link("O700", cid, "Example Corp")
    sync_customer_accounts(stack.env, _run("manual__d1"))
    sync_customer_accounts(stack.env, _run("manual__d2"))
    [first] = stack.accounts()
    stack.env.partner_central.call("delete_customer_account", Catalog="AWS", Identifier=first["Id"])

    stack.rename(cid, "Example Corporation")
    stack.links["O700"] = (stack.links["O700"][0], cid, "Example Corporation")
    stack.commit()
    found_gone = sync_customer_accounts(stack.env, _run("manual__d3"))
    assert (found_gone["updated"], found_gone["failed"]) == (0, 0)
    assert "CUSTOMER_ACCOUNT_GONE" in stack.audit_actions("O700")
    assert stack.company(cid)["aws_customer_account_id"] in ("", None)

    replaced = sync_customer_accounts(stack.env, _run("manual__d4"))
    assert (replaced["created"], replaced["failed"]) == (1, 0)
    [second] = stack.accounts()
    assert second["Id"] != first["Id"]
    assert second["Account"]["CompanyName"] == "Example Corporation"
    assert stack.company(cid)["aws_customer_account_id"] == second["Id"]
    # Then quiet: no second replacement, no failure.
    again = sync_customer_accounts(stack.env, _run("manual__d5"))
    assert (again["created"], again["failed"]) == (0, 0)
    assert [a["Id"] for a in stack.accounts()] == [second["Id"]]


def test_a_duplicate_match_becomes_one_task_on_the_company(stack: Stack) -> None:
    first = stack.new_company("Example Corp", "example.com")
    second = stack.new_company("Example Corporation", "example.com")
    stack.link("O201", first, "Example Corp")
    stack.link("O202", second, "Example Corporation")
    out = sync_customer_accounts(stack.env, _run("manual__d1"))
    assert out["created"] == 2

    matched = sync_customer_accounts(stack.env, _run("manual__d2"))
    assert (matched["matched"], matched["tasks"]) == (2, 1)
    statuses = {stack.company(c)["aws_enrichment_status"] for c in (first, second)}
    assert statuses == {"ENRICHED", "ACTION_REQUIRED"}
    dup = first if stack.company(first)["aws_enrichment_status"] == "ACTION_REQUIRED" else second
    other = second if dup == first else first
    [task] = stack.company_tasks(dup)
    existing = stack.company(other)["aws_customer_account_id"]
    assert existing in task
    assert stack.company_tasks(other) == []

    # Later runs, and the same run retried from before its state was saved, make no second task.
    state = StepState(stack.env.snapshots, "AWS", STATE_NAME)
    saved, _meta = state.load()
    assert saved is not None
    rows = saved.copy()
    rows["task_for"] = None
    state.save_frame(rows)
    sync_customer_accounts(stack.env, _run("manual__d2"))
    sync_customer_accounts(stack.env, _run("manual__d3"))
    assert len(stack.company_tasks(dup)) == 1


def test_no_match_is_recorded_and_not_polled_again(stack: Stack) -> None:
    cid = stack.new_company("Unknown Ltd", "unknown-customer.example")
    stack.link("O300", cid, "Unknown Ltd")
    sync_customer_accounts(stack.env, _run("manual__n1"))
    sync_customer_accounts(stack.env, _run("manual__n2"))
    assert stack.company(cid)["aws_enrichment_status"] == "NO_MATCH_FOUND"
    reads = stack.pc_calls()["GetCustomerAccount"]
    quiet = sync_customer_accounts(stack.env, _run("manual__n3"))
    assert quiet["api_calls"] == {}
    assert stack.pc_calls()["GetCustomerAccount"] == reads


def test_a_company_without_a_name_fails_alone(stack: Stack) -> None:
    good = stack.new_company("Octank", "octank.com")
    bad = stack.new_company("", "anyorganization.org")
    stack.link("O401", good, "Octank")
    stack.link("O402", bad, "")
    out = sync_customer_accounts(stack.env, _run("manual__e1"))
    assert (out["created"], out["failed"], out["failed_companies"]) == (1, 1, [bad])
    [entry] = [e for e in stack.env.audit.history("O402") if e["action"] == "CREATE_CUSTOMER_ACCOUNT"]
    assert entry["success"] is False
    assert "Account.CompanyName is required" in str(entry["error"])
    # Fixed in HubSpot: the next run creates it.
    stack.rename(bad, "AnyOrganization")
    again = sync_customer_accounts(stack.env, _run("manual__e2"))
    assert again["created"] == 1
    assert len(stack.accounts()) == 2


def test_a_retry_after_the_company_changed_resends_the_first_body(stack: Stack) -> None:
    cid = stack.new_company("Octank", "octank.com")
    stack.link("O500", cid, "Octank")
    sync_customer_accounts(stack.env, _run("manual__w1"))
    [account] = stack.accounts()
    state = StepState(stack.env.snapshots, "AWS", STATE_NAME)
    saved, _ = state.load()
    assert saved is not None
    # The task died after the create and before its state was saved; the company is renamed meanwhile.
    state.save_frame(pd.DataFrame(index=pd.Index([], name="company_id")))
    state.save_meta({"creating": {cid: {**account["Account"]}}})
    stack.rename(cid, "Octank Group")
    stack.links["O500"] = (stack.links["O500"][0], cid, "Octank Group")
    stack.commit()
    retry = sync_customer_accounts(stack.env, _run("manual__w1"))
    assert (retry["created"], retry["failed"]) == (1, 0)  # the same account back, no ConflictException
    assert [a["Id"] for a in stack.accounts()] == [account["Id"]]
    # The rename follows as an update on the next run.
    nxt = sync_customer_accounts(stack.env, _run("manual__w2"))
    assert nxt["updated"] == 1
    assert stack.accounts()[0]["Account"]["CompanyName"] == "Octank Group"


def test_an_update_after_a_change_in_partner_central_is_not_lost_or_doubled(stack: Stack) -> None:
    cid = stack.new_company("AnyCompany", "anycompany.com")
    stack.link("O600", cid, "AnyCompany")
    sync_customer_accounts(stack.env, _run("manual__u1"))
    sync_customer_accounts(stack.env, _run("manual__u2"))
    pc = stack.env.partner_central
    [account] = stack.accounts()
    # Someone edits the account in Partner Central: the sync's LastModifiedDate is stale now.
    edited = {**account["Account"], "ParentCompanyName": "AnyCompany Group"}
    pc.call(
        "update_customer_account",
        Catalog="AWS",
        Identifier=account["Id"],
        Account=edited,
        PartnerAccountIdentifier=cid,
        LastModifiedDate=account["LastModifiedDate"],
    )
    stack.rename(cid, "AnyCompany Inc")
    stack.links["O600"] = (stack.links["O600"][0], cid, "AnyCompany Inc")
    stack.commit()
    out = sync_customer_accounts(stack.env, _run("manual__u3"))
    assert (out["updated"], out["failed"]) == (1, 0)
    [account] = stack.accounts()
    assert account["Account"]["CompanyName"] == "AnyCompany Inc"

    # An earlier attempt's update reached AWS but its state was not saved: the retry sends nothing again.
    state = StepState(stack.env.snapshots, "AWS", STATE_NAME)
    before, _ = state.load()
    stack.rename(cid, "AnyCompany Incorporated")
    stack.links["O600"] = (stack.links["O600"][0], cid, "AnyCompany Incorporated")
    stack.commit()
    sync_customer_accounts(stack.env, _run("manual__u4"))
    applied = stack.accounts()[0]["LastModifiedDate"]
    assert before is not None
    state.save_frame(before)
    again = sync_customer_accounts(stack.env, _run("manual__u4"))
    assert (again["updated"], again["failed"]) == (1, 0)
    [account] = stack.accounts()
    assert account["Account"]["CompanyName"] == "AnyCompany Incorporated"
    assert account["LastModifiedDate"] == applied  # not updated a second time


def test_writes_beyond_writes_per_run_wait_for_the_next_run(stack: Stack) -> None:
    cfg = stack.env.config
    stack.env.config = cfg.model_copy(
        update={"customer_accounts": cfg.customer_accounts.model_copy(update={"writes_per_run": 2})}
    )
    for i, domain in enumerate(("anycompany.com", "example.com", "octank.com")):
        stack.link(f"O70{i}", stack.new_company(f"Customer {i}", domain), f"Customer {i}")
    first = sync_customer_accounts(stack.env, _run("manual__p1"))
    assert (first["created"], first["deferred"]) == (2, 1)
    second = sync_customer_accounts(stack.env, _run("manual__p2"))
    assert (second["created"], second["deferred"]) == (1, 0)
    assert len(stack.accounts()) == 3


def test_waiting_accounts_are_listed_by_one_search_and_only_finished_ones_read(stack: Stack) -> None:
    # AWS takes an hour to match: the accounts stay PENDING over the next run.
    requests.post(f"{stack.pc_url}/_emulator/config", json={"enrichment_delay_ms": 3_600_000}, timeout=10)
    companies = [stack.new_company(f"Waiting {i}", f"waiting{i}.example.com") for i in range(3)]
    for i, cid in enumerate(companies):
        stack.link(f"O20{i}", cid, f"Waiting {i}")
    assert sync_customer_accounts(stack.env, _run("manual__w1"))["created"] == 3

    waiting = sync_customer_accounts(stack.env, _run("manual__w2"))

    # One search page lists the three as still pending: no account is read.
    assert waiting["api_calls"] == {"SearchCustomerAccounts": 1}
    assert waiting["polled"] == 0
    assert {stack.company(c)["aws_enrichment_status"] for c in companies} == {"PENDING"}

    requests.post(f"{stack.pc_url}/_emulator/clock", json={"advance_seconds": 3601}, timeout=10)
    done = sync_customer_accounts(stack.env, _run("manual__w3"))

    # The search lists none pending now: the three are read once each and their results written back.
    assert done["api_calls"]["SearchCustomerAccounts"] == 1
    assert done["api_calls"]["GetCustomerAccount"] == 3
    assert done["polled"] == 3
    assert "PENDING" not in {stack.company(c)["aws_enrichment_status"] for c in companies}
