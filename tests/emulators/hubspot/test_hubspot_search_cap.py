"""HubSpot's search result cap against 10,050 deals that share one ``hs_lastmodifieddate``.

HubSpot (developers.hubspot.com/docs/api/crm/search, "Limitations"): at most 200 results a page, and
"the search endpoints are limited to 10,000 total results for any given query. Attempting to page beyond
10,000 will result in a 400 error." A client that needs more must change the query (a filter on
``hs_object_id`` sorted by it), which the last test shows the emulator answers like HubSpot.
"""

from __future__ import annotations

from typing import Any

import pytest

from emulators.hubspot.models import iso

#: One millisecond shared by every seeded deal (a bulk import, or a workflow touching them all at once).
STAMP_MS = 1_767_225_600_000  # 2026-01-01T00:00:00.000Z
DEALS = 10_050


@pytest.fixture(scope="module")
def portal() -> Any:
    """One emulator with 10,050 deals at one timestamp, shared by this module (seeding is the slow part)."""
    from emulators.hubspot import HubSpotEmulator
    from tests.emulators.hubspot.conftest import Api

    with HubSpotEmulator(port=0) as emu:
        api = Api(emu.url)
        api.control("POST", "quotas", {"time_scale": 1000})
        seeded = api.control("POST", "seed", {"deals": DEALS, "seed": 7, "modified_at": STAMP_MS})
        assert len(seeded["deals"]) == DEALS
        yield api, seeded["deals"]


def _search(api: Any, body: dict[str, Any]) -> Any:
    return api("POST", "/crm/v3/objects/deals/search", body)


def _same_stamp(*extra: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": str(STAMP_MS)},
                *extra,
            ]
        }
    ]


def test_seed_modified_at_gives_every_record_one_timestamp(portal) -> None:
    api, _ = portal
    page = _search(api, {"filterGroups": _same_stamp(), "properties": ["hs_lastmodifieddate"], "limit": 5})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == DEALS
    assert {r["properties"]["hs_lastmodifieddate"] for r in body["results"]} == {iso(STAMP_MS)}


def test_paging_stops_at_10000_results_with_a_400(portal) -> None:
    api, _ = portal
    query = {
        "filterGroups": _same_stamp(),
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "limit": 200,
    }
    seen: list[str] = []
    after: str | None = None
    for _ in range(50):
        resp = _search(api, {**query, **({"after": after} if after else {})})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["total"] == DEALS  # total counts every match, not only the reachable 10,000
        seen += [r["id"] for r in body["results"]]
        after = body["paging"]["next"]["after"]
    assert len(seen) == len(set(seen)) == 10_000
    # HubSpot still offers a cursor at the cap; following it is the 400 the docs describe.
    assert after == "10000"
    beyond = _search(api, {**query, "after": after})
    assert beyond.status_code == 400
    assert beyond.json()["category"] == "VALIDATION_ERROR"
    assert "10000" in beyond.json()["message"]
    # A page straddling the cap is cut at the 10,000th result.
    straddle = _search(api, {**query, "after": "9900"}).json()
    assert [r["id"] for r in straddle["results"]] == seen[9_900:]


def test_more_than_200_a_page_is_a_400(portal) -> None:
    api, _ = portal
    resp = _search(api, {"filterGroups": _same_stamp(), "limit": 201})
    assert resp.status_code == 400
    assert resp.json()["category"] == "VALIDATION_ERROR"
    assert len(_search(api, {"filterGroups": _same_stamp(), "limit": 200}).json()["results"]) == 200


def test_a_filter_on_hs_object_id_reaches_the_rest(portal) -> None:
    api, ids = portal
    # Sorted by id, the 10,000th deal's id as a GT filter starts a new query: the other 50.
    ordered = sorted(ids, key=int)
    body = {
        "filterGroups": _same_stamp(
            {"propertyName": "hs_object_id", "operator": "GT", "value": ordered[9_999]}
        ),
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "limit": 200,
    }
    page = _search(api, body).json()
    assert page["total"] == 50
    assert [r["id"] for r in page["results"]] == ordered[10_000:]
    assert "paging" not in page


def test_seed_options_are_checked(api) -> None:
    import requests

    def seed(body: dict[str, Any]) -> requests.Response:
        return requests.post(f"{api.url}/_emulator/seed", json=body, timeout=30)

    assert seed({"deals": 1, "modified_at": "not a time"}).status_code == 400
    assert seed({"deals": 1, "deal_properties": {"no_such_property": "x"}}).status_code == 400
    made = seed({"deals": 2, "deal_properties": {"dealstage": "closedwon"}, "modified_at": STAMP_MS})
    assert made.status_code == 200, made.text
    deal = api("GET", f"/crm/v3/objects/deals/{made.json()['deals'][0]}?properties=dealstage").json()
    assert deal["properties"]["dealstage"] == "closedwon"
    assert deal["updatedAt"] == iso(STAMP_MS)
