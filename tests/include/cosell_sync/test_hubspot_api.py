"""``cosell_sync.hubspot_api`` (HubSpotGateway) against the HubSpot emulator through the real HubSpotHook.

The gateway is what every extract and write goes through: a search that drops or repeats records past a
page or window boundary, or a batch that fails 99 good records for one bad one, is a sync that silently
misses changes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from cosell_hooks import HubSpotHook
from cosell_sync.hubspot_api import HubSpotGateway, association_to, chunks, error_ids

CONN_VAR = "AIRFLOW_CONN_HUBSPOT_DEFAULT"
MODIFIED = "hs_lastmodifieddate"


class Portal:
    """The emulator URL, the seeded ids, and a gateway over a fresh hook."""

    def __init__(self, url: str, seeded: dict[str, Any]) -> None:
        self.url = url
        self.deals: list[str] = seeded["deals"]
        self.companies: list[str] = seeded["companies"]

    def gateway(self) -> HubSpotGateway:
        return HubSpotGateway(HubSpotHook())

    def calls(self) -> dict[str, int]:
        return requests.get(f"{self.url}/_emulator/calls", timeout=10).json()["by_endpoint"]

    def deal(self, deal_id: str, prop: str) -> str | None:
        r = requests.get(
            f"{self.url}/crm/v3/objects/deals/{deal_id}",
            params={"properties": prop},
            headers={"Authorization": "Bearer t"},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()["properties"].get(prop)


def _portal(emulator: Any, monkeypatch: pytest.MonkeyPatch, deals: int) -> Portal:
    monkeypatch.setenv(CONN_VAR, json.dumps({"conn_type": "hubspot", "host": emulator.url, "password": "t"}))
    seeded = requests.post(
        f"{emulator.url}/_emulator/seed",
        json={"deals": deals, "companies": 5, "contacts": 5, "seed": 7},
        timeout=60,
    )
    seeded.raise_for_status()
    requests.delete(f"{emulator.url}/_emulator/calls", timeout=10)
    return Portal(emulator.url, seeded.json())


@pytest.fixture
def portal(hubspot_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Portal:
    return _portal(hubspot_emulator, monkeypatch, deals=450)


# ---------------------------------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------------------------------
def test_chunks_respect_the_batch_limit() -> None:
    sizes = [len(c) for c in chunks(list(range(250)))]
    assert sizes == [100, 100, 50]
    assert list(chunks([])) == []


def test_association_to_is_a_hubspot_defined_association() -> None:
    assert association_to("42", 214) == [
        {"to": {"id": "42"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}
    ]


def test_error_ids_maps_every_named_id_to_its_error() -> None:
    errors = [
        {"status": "error", "category": "VALIDATION_ERROR", "message": "bad", "context": {"ids": ["1", "2"]}},
        {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "gone", "context": {"id": "3"}},
        {"status": "error", "category": "X", "message": "no ids"},
    ]
    assert error_ids(errors) == {
        "1": {"category": "VALIDATION_ERROR", "message": "bad", "status": "error"},
        "2": {"category": "VALIDATION_ERROR", "message": "bad", "status": "error"},
        "3": {"category": "OBJECT_NOT_FOUND", "message": "gone", "status": "error"},
    }


# ---------------------------------------------------------------------------------------------------
# reads
# ---------------------------------------------------------------------------------------------------
def test_search_pages_through_every_match_once_in_modification_order(portal: Portal) -> None:
    gw = portal.gateway()
    found = list(gw.search("deals", [], ["dealname", MODIFIED], MODIFIED))
    ids = [d["id"] for d in found]
    assert sorted(ids) == sorted(portal.deals)
    assert len(ids) == len(set(ids))
    stamps = [d["properties"][MODIFIED] for d in found]
    assert stamps == sorted(stamps)
    assert all("dealname" in d["properties"] for d in found)
    # 450 results at 200 a page: three requests, counted by the gateway and seen by the server.
    assert dict(gw.calls) == {"search:deals": 3}
    assert portal.calls()["POST /crm/v3/objects/deals/search"] == 3


def test_search_honours_the_filter_window(portal: Portal) -> None:
    gw = portal.gateway()
    everything = list(gw.search("deals", [], [MODIFIED], MODIFIED))
    pivot = everything[300]["properties"][MODIFIED]
    groups = [{"filters": [{"propertyName": MODIFIED, "operator": "GTE", "value": pivot}]}]
    recent = [d["id"] for d in gw.search("deals", groups, [MODIFIED], MODIFIED)]
    assert recent == [d["id"] for d in everything[300:]]


def test_keyset_search_reads_every_deal_once_across_pages(
    hubspot_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every page is its own query from the last timestamp read (no offsets, so no 10,000 cap to hit;
    # the cap itself is covered by test_extract_window.py with 10,050 deals at one timestamp).
    portal = _portal(hubspot_emulator, monkeypatch, deals=1000)
    gw = portal.gateway()
    ids = [d["id"] for d in gw.search("deals", [], [MODIFIED], MODIFIED)]
    assert len(ids) == len(set(ids)) == 1000
    assert set(ids) == set(portal.deals)
    assert gw.calls["search:deals"] == portal.calls()["POST /crm/v3/objects/deals/search"] >= 5


def test_batch_read_chunks_by_100_and_reports_missing_ids(portal: Portal) -> None:
    gw = portal.gateway()
    wanted = [*portal.deals[:250], "99999999"]
    found, errors = gw.batch_read("deals", wanted + portal.deals[:10], ["dealname"])
    assert sorted(d["id"] for d in found) == sorted(portal.deals[:250])
    assert error_ids(errors).keys() == {"99999999"}
    assert error_ids(errors)["99999999"]["category"] == "OBJECT_NOT_FOUND"
    # 251 distinct ids (duplicates dropped): three batch calls
    assert gw.calls["batch_read:deals"] == 3
    assert portal.calls()["POST /crm/v3/objects/deals/batch/read"] == 3


def test_contacts_by_email_keys_each_found_contact_by_its_email_in_one_read(portal: Portal) -> None:
    gw = portal.gateway()
    made = gw.batch_create(
        "contacts",
        [
            {"properties": {"email": "ann.lee@customer.example", "jobtitle": "CTO"}},
            {"properties": {"email": "bo.chen@customer.example", "jobtitle": "Buyer"}},
        ],
    )
    assert len(made.results) == 2
    found = gw.contacts_by_email(
        ["bo.chen@customer.example", "ann.lee@customer.example", "nobody@customer.example"], ["jobtitle"]
    )
    assert {e: c["properties"]["jobtitle"] for e, c in found.items()} == {
        "ann.lee@customer.example": "CTO",
        "bo.chen@customer.example": "Buyer",
    }  # an address with no contact is absent, not an error
    assert gw.calls["batch_read:contacts"] == 1
    assert gw.contacts_by_email([], ["jobtitle"]) == {}
    assert gw.calls["batch_read:contacts"] == 1  # nothing to read: no call


def test_associations_map_each_deal_to_its_company(portal: Portal) -> None:
    gw = portal.gateway()
    owners = gw.associations("deals", "companies", portal.deals[:120])
    assert set(owners) == set(portal.deals[:120])
    assert all(len(c) == 1 and c[0] in portal.companies for c in owners.values())
    assert gw.calls["associations:deals->companies"] == 2


# ---------------------------------------------------------------------------------------------------
# writes
# ---------------------------------------------------------------------------------------------------
def test_one_invalid_input_fails_alone_and_the_rest_of_the_batch_is_written(portal: Portal) -> None:
    gw = portal.gateway()
    good = portal.deals[:7]
    bad = portal.deals[7]
    updates = {d: {"dealname": f"renamed {d}"} for d in good}
    updates[bad] = {"dealstage": "no-such-stage"}
    result = gw.batch_update("deals", updates)
    failed = error_ids(result.errors)
    assert failed.keys() == {bad}
    assert failed[bad]["category"] == "VALIDATION_ERROR"
    assert sorted(r["id"] for r in result.results) == sorted(good)
    assert all(portal.deal(d, "dealname") == f"renamed {d}" for d in good)
    assert portal.deal(bad, "dealstage") != "no-such-stage"
    # halving: far fewer calls than one per input, more than one
    assert 1 < gw.calls["batch_update:deals"] < len(updates)


def test_per_item_failures_of_a_207_are_attributed_to_their_ids(portal: Portal) -> None:
    gw = portal.gateway()
    bad = portal.deals[3]
    requests.post(f"{portal.url}/_emulator/faults", json={"fail_ids": [bad]}, timeout=10).raise_for_status()
    updates = {d: {"dealname": "x"} for d in portal.deals[:5]}
    result = gw.batch_update("deals", updates)
    assert set(error_ids(result.errors)) == {bad}
    assert len(result.results) == 4
    assert gw.calls["batch_update:deals"] == 1


def test_batch_update_splits_into_batches_of_100(portal: Portal) -> None:
    gw = portal.gateway()
    result = gw.batch_update("deals", {d: {"dealname": "bulk"} for d in portal.deals[:230]})
    assert result.errors == []
    assert len(result.results) == 230
    assert gw.calls["batch_update:deals"] == 3
    assert gw.total_calls == 3
