"""Search before create and AWS insights (``cosell_sync.pc_search``) against the Partner Central emulator.

What a user notices: an opportunity that exists for a deal is always found (whatever the catalog's size),
the lookup's cost stays within its bound, an account without search is reported as such, and the insight
fields come back as HubSpot property values.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import pytest
import requests

from cosell_hooks import PartnerCentralHook
from cosell_sync.pc_search import LOOKUP_BATCH, find_by_partner_ids, read_insights

PC_CONN = "AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT"


@pytest.fixture
def api(pc_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> PartnerCentralHook:
    extra = {"region_name": "us-east-1", "endpoint_url": pc_emulator.url, "max_attempts": 1}
    monkeypatch.setenv(
        PC_CONN, json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra})
    )
    requests.post(f"{pc_emulator.url}/_emulator/quotas", json={"enabled": False}, timeout=10)
    return PartnerCentralHook(catalog="AWS")


def _seed(url: str, count: int) -> list[dict[str, Any]]:
    """Seeded opportunities as (id, partner id) pairs."""
    ids = requests.post(
        f"{url}/_emulator/seed", json={"opportunities": count, "seed": 3, "catalog": "AWS"}, timeout=60
    ).json()["opportunity_ids"]
    import boto3

    client = boto3.client(
        "partnercentral-selling",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    out = []
    for page in client.get_paginator("list_opportunities").paginate(Catalog="AWS"):
        out += [
            {"id": s["Id"], "pid": s.get("PartnerOpportunityIdentifier")}
            for s in page["OpportunitySummaries"]
            if s["Id"] in set(ids)
        ]
    return out


@pytest.mark.parametrize("wanted", [3, 50, 150])
def test_existing_opportunities_are_found_by_deal_id_within_the_cost_bound(
    api: PartnerCentralHook, pc_emulator: Any, wanted: int
) -> None:
    """A few deals are looked up 20 per call; many by a scan of a small catalog, else scan then lookups."""
    book = [o for o in _seed(pc_emulator.url, 300) if o["pid"]]
    assert len(book) >= wanted
    present = book[:wanted]
    # Deal ids that have no opportunity, and one that is a prefix of an existing id (substring match).
    absent = ["no-such-deal-1", "no-such-deal-2", str(present[0]["pid"])[:-1] or "x"]
    calls: Counter[str] = Counter()
    found = find_by_partner_ids(api, [o["pid"] for o in present] + absent, calls)
    assert found == {o["pid"]: o["id"] for o in present}
    lookups = math.ceil((wanted + len(absent)) / LOOKUP_BATCH)
    assert calls["SearchOpportunities"] <= 2 * lookups


def test_search_not_enabled_is_reported_not_raised(api: PartnerCentralHook, pc_emulator: Any) -> None:
    requests.post(f"{pc_emulator.url}/_emulator/config", json={"search_enabled": False}, timeout=10)
    calls: Counter[str] = Counter()
    assert find_by_partner_ids(api, ["1", "2"], calls) is None
    assert read_insights(api, calls) is None


def test_insights_come_back_as_property_values(api: PartnerCentralHook, pc_emulator: Any) -> None:
    """Every opportunity AWS has seen (past Pending Submission) is read, 100 per call, as property values."""
    import boto3

    _seed(pc_emulator.url, 250)
    client = boto3.client(
        "partnercentral-selling",
        region_name="us-east-1",
        endpoint_url=pc_emulator.url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    statuses = {
        s["Id"]: (s.get("LifeCycle") or {}).get("ReviewStatus")
        for page in client.get_paginator("list_opportunities").paginate(Catalog="AWS")
        for s in page["OpportunitySummaries"]
    }
    seen_by_aws = {oid for oid, status in statuses.items() if status != "Pending Submission"}
    assert 100 < len(seen_by_aws) < len(statuses), "the seed mixes review states"
    oid = sorted(seen_by_aws)[0]
    requests.post(
        f"{pc_emulator.url}/_emulator/simulate/insights",
        json={
            "catalog": "AWS",
            "opportunity_id": oid,
            "engagement_score": "Low",
            "quality_score": 42,
            "origin": "AWS Referral",
            "cosell_motion": "Co-Sell",
        },
        timeout=10,
    ).raise_for_status()
    calls: Counter[str] = Counter()
    insights = read_insights(api, calls)
    assert insights is not None
    assert set(insights) == seen_by_aws
    assert calls["SearchOpportunities"] == math.ceil(len(seen_by_aws) / 100)
    assert insights[oid] == {
        "origin": "AWS Referral",
        "cosell_motion": "Co-Sell",
        "engagement_score": "Low",
        "quality_score": "42",
    }
