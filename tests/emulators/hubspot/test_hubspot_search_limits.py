"""Search semantics (operators, sorts, query, limits) and rate-limit headers/tiers."""

from __future__ import annotations

import pytest


@pytest.fixture
def deals(fast):
    rows = [
        {
            "dealname": "Alpha cloud migration",
            "amount": "100",
            "dealstage": "closedwon",
            "closedate": "2025-01-10",
        },
        {
            "dealname": "Beta analytics",
            "amount": "250.5",
            "dealstage": "qualifiedtobuy",
            "closedate": "2025-02-10",
        },
        {"dealname": "Gamma Cloud", "amount": "999", "dealstage": "closedlost"},
        {"dealname": "delta", "dealstage": "closedwon", "closedate": "1741564800000"},
    ]
    ids = [fast("POST", "/crm/v3/objects/deals", {"properties": r}).json()["id"] for r in rows]
    return fast, ids


def _search(api, body, type_="deals"):
    resp = api("POST", f"/crm/v3/objects/{type_}/search", body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _ids(api, filters, **extra):
    body = {"filterGroups": [{"filters": filters}], "limit": 200, **extra}
    return [r["id"] for r in _search(api, body)["results"]]


def test_every_operator(deals) -> None:
    api, (a, b, g, d) = deals
    assert _ids(api, [{"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"}]) == [a, d]
    assert _ids(api, [{"propertyName": "dealstage", "operator": "NEQ", "value": "closedwon"}]) == [b, g]
    assert _ids(api, [{"propertyName": "amount", "operator": "GT", "value": "100"}]) == [b, g]
    assert _ids(api, [{"propertyName": "amount", "operator": "GTE", "value": "100"}]) == [a, b, g]
    assert _ids(api, [{"propertyName": "amount", "operator": "LT", "value": "250.5"}]) == [a]
    assert _ids(api, [{"propertyName": "amount", "operator": "LTE", "value": "250.5"}]) == [a, b]
    assert _ids(
        api, [{"propertyName": "amount", "operator": "BETWEEN", "value": "101", "highValue": "999"}]
    ) == [b, g]
    assert _ids(
        api, [{"propertyName": "dealstage", "operator": "IN", "values": ["closedlost", "qualifiedtobuy"]}]
    ) == [b, g]
    assert _ids(api, [{"propertyName": "dealstage", "operator": "NOT_IN", "values": ["closedwon"]}]) == [b, g]
    assert _ids(api, [{"propertyName": "amount", "operator": "HAS_PROPERTY"}]) == [a, b, g]
    assert _ids(api, [{"propertyName": "amount", "operator": "NOT_HAS_PROPERTY"}]) == [d]
    assert _ids(api, [{"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "cloud"}]) == [a, g]
    assert _ids(api, [{"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "*lytics"}]) == [b]
    assert _ids(api, [{"propertyName": "dealname", "operator": "NOT_CONTAINS_TOKEN", "value": "cloud"}]) == [
        b,
        d,
    ]
    # Dates: epoch-ms strings and ISO strings both work.
    assert _ids(api, [{"propertyName": "closedate", "operator": "GTE", "value": "1738368000000"}]) == [b, d]
    assert _ids(api, [{"propertyName": "closedate", "operator": "LT", "value": "2025-02-01T00:00:00Z"}]) == [
        a
    ]
    # OR of ANDs.
    body = {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "dealstage", "operator": "EQ", "value": "closedwon"},
                    {"propertyName": "amount", "operator": "HAS_PROPERTY"},
                ]
            },
            {"filters": [{"propertyName": "dealstage", "operator": "EQ", "value": "closedlost"}]},
        ]
    }
    assert [r["id"] for r in _search(api, body)["results"]] == [a, g]


def test_sorts_query_properties_and_paging(deals) -> None:
    api, (a, b, g, d) = deals
    desc = _search(api, {"sorts": [{"propertyName": "amount", "direction": "DESCENDING"}]})
    assert [r["id"] for r in desc["results"]] == [g, b, a, d]  # missing values last
    asc = _search(api, {"sorts": ["amount"]})
    assert [r["id"] for r in asc["results"]] == [a, b, g, d]
    assert [r["id"] for r in _search(api, {"sorts": ["-amount"]})["results"]] == [g, b, a, d]
    assert [r["id"] for r in _search(api, {"query": "cloud"})["results"]] == [a, g]
    page = _search(api, {"properties": ["dealname"], "limit": 3})
    assert page["total"] == 4
    assert len(page["results"]) == 3
    assert page["paging"]["next"]["after"] == "3"
    assert set(page["results"][0]["properties"]) == {
        "dealname",
        "hs_object_id",
        "createdate",
        "hs_lastmodifieddate",
    }
    rest = _search(api, {"limit": 3, "after": "3"})
    assert [r["id"] for r in rest["results"]] == [d]
    assert "paging" not in rest


def test_search_limits_are_400s(fast) -> None:
    def status(body):
        return fast("POST", "/crm/v3/objects/contacts/search", body).status_code

    assert status({"limit": 201}) == 400
    assert status({"limit": 200}) == 200
    assert status({"after": "10000"}) == 400
    assert (
        status({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}] * 6})
        == 400
    )
    assert (
        status({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}] * 7}]})
        == 400
    )
    four_by_five = [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}] * 5}] * 4
    assert status({"filterGroups": four_by_five}) == 400  # 20 filters > 18 in total
    assert (
        status({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]})
        == 400
    )
    assert (
        status({"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "x"}]}]})
        == 400
    )
    assert status({"sorts": ["email", "firstname"]}) == 400


def test_rate_limit_headers_tiers_and_time_scale(api) -> None:
    resp = api("GET", "/crm/v3/objects/deals")
    assert resp.headers["X-HubSpot-RateLimit-Max"] == "100"
    assert resp.headers["X-HubSpot-RateLimit-Remaining"] == "99"
    assert resp.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert resp.headers["X-HubSpot-RateLimit-Daily"] == "250000"
    assert resp.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "249999"
    search = api("POST", "/crm/v3/objects/deals/search", {})
    assert not any(h.startswith("X-HubSpot-RateLimit") for h in search.headers)
    # Search counts toward the 10-second budget too.
    assert api("GET", "/crm/v3/objects/deals").headers["X-HubSpot-RateLimit-Remaining"] == "97"
    assert api.control("POST", "quotas", {"tier": "professional"})["burst_per_10s"] == 190
    assert api.control("POST", "quotas", {"tier": "api_addon"})["burst_per_10s"] == 250
    settings = api.control("POST", "quotas", {"tier": "free", "time_scale": 10})
    assert settings["burst_per_10s"] == 1000
    assert settings["search_per_second"] == 50
    assert api("GET", "/crm/v3/objects/deals").headers["X-HubSpot-RateLimit-Max"] == "1000"
    api.control("POST", "quotas", {"enabled": False, "time_scale": 0.01})
    assert all(api("GET", "/crm/v3/objects/deals").status_code == 200 for _ in range(5))
    api.control("POST", "quotas", {"enabled": True, "time_scale": 0.01})  # 1 request per 10 s
    codes = [api("GET", "/crm/v3/objects/deals").status_code for _ in range(2)]
    assert codes == [200, 429]
    body = api("GET", "/crm/v3/objects/deals").json()
    assert body["status"] == "error"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["correlationId"]
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert api.control("GET", "calls")["throttled"] == 2
