"""New companies are matched on their domain before one is created (``HubSpotWriter.create_related``).

Driven through the real ``HubSpotHook`` against the HubSpot emulator (helpers from ``test_writers``):
outcomes are checked on what HubSpot holds afterwards and on the calls the emulator counted.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from cosell_hooks import HubSpotHook
from cosell_sync.config import SyncConfig, load_config
from cosell_sync.domains import normalize_domain
from cosell_sync.setup import ensure_properties
from cosell_sync.writers.hubspot import CREATED_FOR_PROPERTY
from tests.include.cosell_sync.test_writers import HS_CONN, HS_TOKEN, HsEmulator, NoLimit, hs_writer

COMPANY_SEARCH = "POST /crm/v3/objects/companies/search"
COMPANY_UPSERT = "POST /crm/v3/objects/companies/batch/upsert"


@pytest.fixture
def cfg() -> SyncConfig:
    """The shipped sync configuration."""
    return load_config()


@pytest.fixture
def hs(hubspot_emulator: Any, monkeypatch: pytest.MonkeyPatch, cfg: SyncConfig) -> HsEmulator:
    """The HubSpot emulator (limits off) with a few seeded companies and the sync's custom properties."""
    monkeypatch.setenv(
        HS_CONN, json.dumps({"conn_type": "hubspot", "password": HS_TOKEN, "host": hubspot_emulator.url})
    )
    requests.post(f"{hubspot_emulator.url}/_emulator/quotas", json={"enabled": False}, timeout=10)
    seeded = requests.post(
        f"{hubspot_emulator.url}/_emulator/seed",
        json={"deals": 3, "companies": 3, "contacts": 3, "seed": 7},
        timeout=30,
    ).json()
    hook = HubSpotHook()
    hook.burst_limiter = NoLimit()
    hook.search_limiter = NoLimit()
    ensure_properties(cfg, hook)
    emulator = HsEmulator(hubspot_emulator.url, hook, seeded)
    emulator.reset_calls()
    return emulator


def make_company(hs: HsEmulator, **props: str) -> str:
    """Create a company directly in HubSpot (what the customer's portal already holds); its id."""
    response = requests.post(
        f"{hs.url}/crm/v3/objects/companies", json={"properties": props}, headers=hs.headers, timeout=10
    )
    response.raise_for_status()
    return str(response.json()["id"])


def new_deals(cfg: SyncConfig, hs: HsEmulator, oids: list[str]) -> dict[str, str]:
    """Deals for new opportunities (as apply creates them before their company): opportunity -> deal."""
    rows = {
        oid: {"dealname": f"Deal {oid}", "pipeline": "default", "dealstage": "qualifiedtobuy"} for oid in oids
    }
    created, failed = hs_writer(cfg, hs).upsert_deals(rows)
    assert failed == {}
    return created


def company_row(website: str | None = None, **props: str) -> dict[str, dict[str, str]]:
    """``new_deal_properties`` output for one opportunity: its company row (and no contact)."""
    row = {"name": "Example Customer (from AWS)", "city": "Paris", **props}
    if website is not None:
        row["website"] = website
    return {"company": row}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://WWW.Example-Customer.com/about?x=1", "example-customer.com"),
        ("example-customer.com.", "example-customer.com"),
        ("www.example-customer.com", "example-customer.com"),
        ("http://user@shop.example.org:8080/path", "shop.example.org"),
        ("10.0.0.1", None),
        ("localhost", None),
        ("not a domain", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_domain(value: Any, expected: str | None) -> None:
    assert normalize_domain(value) == expected


class TestDomainMatch:
    def test_existing_domain_is_associated_not_created(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        existing = make_company(
            hs, name="Example Customer GmbH", domain="example-customer.com", city="Berlin"
        )
        deals = new_deals(cfg, hs, ["O9001"])
        before = hs.count("companies")
        hs.reset_calls()

        out = hs_writer(cfg, hs).create_related(
            deals, {"O9001": company_row("https://www.Example-Customer.com/pricing")}
        )

        calls = hs.calls()  # before the assertions' own reads
        assert calls[COMPANY_SEARCH] == 1
        assert calls[COMPANY_UPSERT] == 0
        assert out["O9001"]["company_id"] == existing
        assert hs.count("companies") == before
        assert hs.associated("deals", deals["O9001"], "companies") == [existing]
        # The customer's own HubSpot data wins: values it has stay; only its empty ones are filled (left
        # empty, the next run would take the blank for a HubSpot edit and clear the opportunity's value).
        props = hs.get("companies", existing, ["name", "city", "website", CREATED_FOR_PROPERTY])
        assert (props["name"], props["city"]) == ("Example Customer GmbH", "Berlin")
        assert props["website"] == "https://www.Example-Customer.com/pricing"
        assert not props.get(CREATED_FOR_PROPERTY)

    def test_created_company_gets_its_domain_so_the_next_opportunity_matches(
        self, cfg: SyncConfig, hs: HsEmulator
    ) -> None:
        writer = hs_writer(cfg, hs)
        first = writer.create_related(
            new_deals(cfg, hs, ["O9010"]), {"O9010": company_row("https://www.Fresh-Customer.example.org/x")}
        )
        company = first["O9010"]["company_id"]
        assert hs.get("companies", company, ["domain"])["domain"] == "fresh-customer.example.org"
        before = hs.count("companies")

        later = writer.create_related(
            new_deals(cfg, hs, ["O9011"]), {"O9011": company_row("fresh-customer.example.org")}
        )

        assert later["O9011"]["company_id"] == company
        assert hs.count("companies") == before

    def test_a_company_stored_with_www_is_matched(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        existing = make_company(hs, name="Example Customer", domain="www.example-customer.com")
        deals = new_deals(cfg, hs, ["O9020"])
        before = hs.count("companies")

        out = hs_writer(cfg, hs).create_related(deals, {"O9020": company_row("https://example-customer.com")})

        assert out["O9020"]["company_id"] == existing
        assert hs.count("companies") == before

    def test_domain_property_wins_over_website(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        existing = make_company(hs, name="Example Customer", domain="example-customer.com")
        deals = new_deals(cfg, hs, ["O9002"])

        row = company_row("https://other.example.net", domain="Example-Customer.com.")
        out = hs_writer(cfg, hs).create_related(deals, {"O9002": row})

        assert out["O9002"]["company_id"] == existing

    def test_several_companies_on_the_domain_oldest_wins(
        self, cfg: SyncConfig, hs: HsEmulator, caplog: pytest.LogCaptureFixture
    ) -> None:
        oldest = make_company(hs, name="Example Customer", domain="example-customer.com")
        newer = make_company(hs, name="Example Customer (dup)", domain="example-customer.com")
        deals = new_deals(cfg, hs, ["O9003", "O9004"])
        rows = {o: company_row("https://example-customer.com") for o in deals}
        caplog.set_level("INFO", logger="cosell_sync.writers.hubspot")

        out = hs_writer(cfg, hs).create_related(deals, rows)

        assert int(oldest) < int(newer)
        assert {o: r["company_id"] for o, r in out.items()} == {"O9003": oldest, "O9004": oldest}
        assert "1 domains have several companies" in caplog.text
        assert "example-customer.com" not in caplog.text  # the count is logged, never the domain

    def test_unmatched_domain_and_no_domain_are_created_once(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        existing = make_company(hs, name="Example Customer", domain="example-customer.com")
        deals = new_deals(cfg, hs, ["O9005", "O9006", "O9007"])
        rows = {
            "O9005": company_row("https://www.example-customer.com"),
            "O9006": company_row("https://brand-new.example.org", name="Brand New Ltd"),
            "O9007": company_row(None, name="No Website Co"),
        }
        before = hs.count("companies")
        writer = hs_writer(cfg, hs)

        out = writer.create_related(deals, rows)
        # A retried task (or a run killed after the upsert) finds the same companies, creates none.
        again = writer.create_related(deals, rows)

        assert again == out
        assert out["O9005"]["company_id"] == existing
        assert out["O9006"]["company_id"] not in (None, existing)
        assert out["O9007"]["company_id"] not in (None, existing)
        assert hs.count("companies") == before + 2
        assert hs.get("companies", out["O9006"]["company_id"], ["name"])["name"] == "Brand New Ltd"
        for oid, deal_id in deals.items():
            assert hs.associated("deals", deal_id, "companies") == [out[oid]["company_id"]]

    def test_one_search_per_50_domains_none_without(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        matched = {
            f"O{8000 + i}": make_company(hs, name=f"C{i}", domain=f"cust{i}.example.com") for i in (0, 149)
        }
        oids = [f"O{8000 + i}" for i in range(150)]
        deals = new_deals(cfg, hs, oids)
        rows = {oid: company_row(f"https://www.cust{i}.example.com/") for i, oid in enumerate(oids)}
        before = hs.count("companies")
        hs.reset_calls()

        out = hs_writer(cfg, hs).create_related(deals, rows)

        searches = hs.calls()[COMPANY_SEARCH]
        assert searches == 3  # 150 domains, each with and without www.: ceil(150 / 50)
        assert hs.count("companies") == before + 148
        assert {o: out[o]["company_id"] for o in matched} == matched

        # New companies without a website or domain: no search at all.
        more = new_deals(cfg, hs, ["O9100", "O9101"])
        hs.reset_calls()
        hs_writer(cfg, hs).create_related(more, {o: company_row(None) for o in more})
        assert hs.calls()[COMPANY_SEARCH] == 0
