"""SearchOpportunities, SearchEngagements and ListEngagementGroups against the emulator over HTTP.

Also defines ``drive_search``, which the output-shape conformance test in test_pc_engagements.py runs.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pc_helpers import associate_solution, opportunity_payload, update_from

OFFER_ARN = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-abc123"
OFFER_SET_ARN = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/OfferSet/offerset-xyz789"


def _eq(key: str, value: str) -> dict[str, Any]:
    return {"EqualsTo": {"Key": key, "Value": {"StringValue": value}}}


def _pred(op: str, key: str, **value: Any) -> dict[str, Any]:
    return {op: {"Key": key, "Value": value}}


def _all_pages(call: Any, list_key: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a paginated search, following NextToken."""
    items: list[dict[str, Any]] = []
    token = kwargs.pop("NextToken", None)
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        items += page[list_key]
        token = page.get("NextToken")
        if not token:
            return items


def _opp_ids(pc: Any, **kwargs: Any) -> list[str]:
    return [
        s["Id"]
        for s in _all_pages(pc.search_opportunities, "OpportunitySearchSummaries", Catalog="AWS", **kwargs)
    ]


def _error(exc: pytest.ExceptionInfo[ClientError]) -> dict[str, Any]:
    return exc.value.response


def _create(pc: Any, company: str, title: str, stage: str, country: str, amount: str, **extra: Any) -> str:
    payload = opportunity_payload(**extra)
    payload["Customer"]["Account"]["CompanyName"] = company
    payload["Customer"]["Account"]["Address"]["CountryCode"] = country
    payload["Project"]["Title"] = title
    payload["Project"]["ExpectedCustomerSpend"][0]["Amount"] = amount
    payload["LifeCycle"]["Stage"] = stage
    return pc.create_opportunity(**payload)["Id"]


@pytest.fixture
def trio(pc: Any) -> dict[str, str]:
    """Three opportunities with distinct, known field values (created in order a, b, c)."""
    a = _create(
        pc,
        "Acme Analytics Inc.",
        "Data lake modernization",
        "Prospect",
        "US",
        "5000",
        PartnerOpportunityIdentifier="HS-100",
    )
    b = _create(
        pc,
        "Globex Corp.",
        "SAP migration to AWS",
        "Qualified",
        "DE",
        "12000.50",
        PartnerOpportunityIdentifier="HS-200",
    )
    c = _create(
        pc,
        "Initech LLC",
        "Contact center on Amazon Connect",
        "Prospect",
        "GB",
        "800",
        PartnerOpportunityIdentifier="HS-300",
        Tags=[{"Key": "env", "Value": "prod"}],
    )
    # ApnPrograms: a holds two programs, b one of them, c none.
    for ident, programs in (
        (a, ["ISV Accelerate Program", "Migration Acceleration Program"]),
        (b, ["ISV Accelerate Program"]),
    ):
        current = pc.get_opportunity(Catalog="AWS", Identifier=ident)
        pc.update_opportunity(**update_from(current, Project={**current["Project"], "ApnPrograms": programs}))
    return {"a": a, "b": b, "c": c}


# ------------------------------------------------------------------------------------------- filters
def test_leaf_predicates_match_documented_semantics(pc, trio):
    a, b, c = trio["a"], trio["b"], trio["c"]
    assert set(_opp_ids(pc, Filter=_eq("Stage", "Prospect"))) == {a, c}
    assert set(_opp_ids(pc, Filter=_eq("CountryCode", "DE"))) == {b}
    # EqualsTo is exact: a prefix does not match.
    assert _opp_ids(pc, Filter=_eq("CustomerCompanyName", "Acme")) == []
    # ContainsAny: case-insensitive substring, any of the listed values.
    assert _opp_ids(pc, Filter=_pred("ContainsAny", "CustomerCompanyName", StringValue="aCmE")) == [a]
    assert set(
        _opp_ids(
            pc, Filter=_pred("ContainsAny", "CustomerCompanyName", StringListValue=["globex", "INITECH"])
        )
    ) == {b, c}
    # On a multi-valued field any element may hold the substring.
    assert set(_opp_ids(pc, Filter=_pred("ContainsAny", "ApnPrograms", StringValue="isv accelerate"))) == {
        a,
        b,
    }
    # ContainsAll: every listed value must be present.
    both = ["ISV Accelerate Program", "Migration Acceleration Program"]
    assert _opp_ids(pc, Filter=_pred("ContainsAll", "ApnPrograms", StringListValue=both)) == [a]
    assert set(_opp_ids(pc, Filter=_pred("ContainsAll", "ApnPrograms", StringValue=both[0]))) == {a, b}
    # Tags are matched as "Key:Value".
    assert _opp_ids(pc, Filter=_eq("Tags", "env:prod")) == [c]
    assert _opp_ids(pc, Filter=_pred("ContainsAny", "Tags", StringValue="ENV:")) == [c]


def test_range_predicates_on_numbers_and_dates(pc, trio):
    a, b, c = trio["a"], trio["b"], trio["c"]
    assert _opp_ids(pc, Filter=_pred("GreaterThan", "EstimatedMrr", DoubleValue=5000.0)) == [b]
    assert set(_opp_ids(pc, Filter=_pred("GreaterThanOrEquals", "EstimatedMrr", LongValue=5000))) == {a, b}
    assert _opp_ids(pc, Filter=_pred("LessThan", "EstimatedMrr", LongValue=5000)) == [c]
    assert _opp_ids(pc, Filter=_pred("LessThanOrEquals", "EstimatedMrr", DoubleValue=800.0)) == [c]
    created_b = pc.get_opportunity(Catalog="AWS", Identifier=b)["CreatedDate"]
    assert set(_opp_ids(pc, Filter=_pred("GreaterThanOrEquals", "CreatedDate", DateValue=created_b))) == {
        b,
        c,
    }
    assert _opp_ids(pc, Filter=_pred("LessThan", "CreatedDate", DateValue=created_b)) == [a]
    assert _opp_ids(pc, Filter=_pred("EqualsTo", "CreatedDate", DateValue=created_b)) == [b]
    close = pc.get_opportunity(Catalog="AWS", Identifier=a)["LifeCycle"]["TargetCloseDate"]
    assert set(_opp_ids(pc, Filter=_pred("GreaterThanOrEquals", "TargetCloseDate", DateValue=close))) == {
        a,
        b,
        c,
    }
    assert _opp_ids(pc, Filter=_pred("GreaterThan", "TargetCloseDate", DateValue=close)) == []


def test_combinators_and_not(pc, trio):
    a, b, c = trio["a"], trio["b"], trio["c"]
    prospect_us = {"AndAllFilters": [_eq("Stage", "Prospect"), _eq("CountryCode", "US")]}
    assert _opp_ids(pc, Filter=prospect_us) == [a]
    either = {"OrAllFilters": [_eq("CountryCode", "DE"), _eq("CountryCode", "GB")]}
    assert set(_opp_ids(pc, Filter=either)) == {b, c}
    assert set(_opp_ids(pc, Filter={"NotFilter": _eq("Stage", "Prospect")})) == {b}
    nested = {
        "AndAllFilters": [
            {"OrAllFilters": [_eq("Stage", "Prospect"), _eq("Stage", "Qualified")]},
            {"NotFilter": {"OrAllFilters": [_eq("CountryCode", "US"), _eq("CountryCode", "DE")]}},
        ]
    }
    assert _opp_ids(pc, Filter=nested) == [c]


def _validation(pc: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as exc:
        pc.search_opportunities(Catalog="AWS", **kwargs)
    err = _error(exc)
    assert err["Error"]["Code"] == "ValidationException"
    return err


def test_unordered_keys_and_wrong_value_types_are_rejected(pc, trio):
    err = _validation(pc, Filter=_pred("GreaterThan", "Stage", StringValue="Prospect"))
    assert err["ErrorList"][0]["FieldName"] == "Filter.GreaterThan.Key"
    assert "Stage" in err["Message"]
    err = _validation(pc, Filter=_pred("ContainsAny", "CreatedDate", StringValue="2025"))
    assert "CreatedDate" in err["Message"]
    for bad in (
        _pred("GreaterThan", "EstimatedMrr", StringValue="5000"),
        _pred("LessThan", "CreatedDate", LongValue=1_700_000_000),
        _pred("EqualsTo", "Stage", StringListValue=["Prospect"]),
        _pred("EqualsTo", "LastModifiedDate", StringValue="2025-01-01"),
        _pred("ContainsAll", "Industry", LongValue=3),
    ):
        err = _validation(pc, Filter={"AndAllFilters": [_eq("Stage", "Prospect"), bad]})
        assert err["ErrorList"][0]["FieldName"].startswith("Filter.AndAllFilters[1].")
        assert err["ErrorList"][0]["FieldName"].endswith(".Value")


def test_filter_limits(pc, raw, trio):
    leaf = _eq("Stage", "Prospect")
    # Three levels of combinators are allowed, a fourth is not.
    three = {"AndAllFilters": [{"OrAllFilters": [{"NotFilter": leaf}]}]}
    assert set(_opp_ids(pc, Filter=three)) == {trio["b"]}
    err = _validation(pc, Filter={"NotFilter": three})
    assert "depth" in err["Message"]
    # At most 20 leaf conditions per tree.
    twenty = {"OrAllFilters": [{"AndAllFilters": [leaf] * 10}, {"AndAllFilters": [leaf] * 10}]}
    assert set(_opp_ids(pc, Filter=twenty)) == {trio["a"], trio["c"]}
    twenty_one = {"OrAllFilters": [{"AndAllFilters": [leaf] * 10}, {"AndAllFilters": [leaf] * 10}, leaf]}
    err = _validation(pc, Filter=twenty_one)
    assert err["ErrorList"][0]["Code"] == "TOO_MANY_VALUES"
    # The model's list bounds (1..10 sub-filters, 1..20 strings) and exactly one member per node.
    with pytest.raises(ClientError) as exc:
        raw.search_opportunities(Catalog="AWS", Filter={"AndAllFilters": [leaf] * 11})
    assert _error(exc)["ErrorList"][0]["Code"] == "TOO_MANY_VALUES"
    with pytest.raises(ClientError) as exc:
        raw.search_opportunities(
            Catalog="AWS", Filter=_pred("ContainsAny", "Stage", StringListValue=[f"s{i}" for i in range(21)])
        )
    assert _error(exc)["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        raw.search_opportunities(Catalog="AWS", Filter={"AndAllFilters": [leaf], "NotFilter": leaf})
    assert _error(exc)["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        raw.search_opportunities(Catalog="AWS", Filter={})
    assert _error(exc)["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        raw.search_opportunities(Catalog="AWS", MaxResults=101)
    assert _error(exc)["Error"]["Code"] == "ValidationException"


# ------------------------------------------------------------------------------ keyword, sort, paging
def test_keyword_is_case_insensitive_and_narrows_with_filter(pc, trio):
    a, b, c = trio["a"], trio["b"], trio["c"]
    assert _opp_ids(pc, Keyword="ACME") == [a]
    assert _opp_ids(pc, Keyword="hs-200") == [b]  # partner opportunity identifier
    assert _opp_ids(pc, Keyword=c) == [c]  # opportunity id
    assert _opp_ids(pc, Keyword="amazon connect") == [c]  # title, every term must occur
    assert _opp_ids(pc, Keyword="amazon globex") == []
    assert set(_opp_ids(pc, Keyword="a")) == {a, b, c}
    assert _opp_ids(pc, Keyword="migration", Filter=_eq("Stage", "Qualified")) == [b]
    assert _opp_ids(pc, Keyword="migration", Filter=_eq("Stage", "Prospect")) == []


SORTABLE = [
    "OpportunityId",
    "Stage",
    "ReviewStatus",
    "CustomerCompanyName",
    "LastModifiedDate",
    "TargetCloseDate",
    "CreatedDate",
    "CountryCode",
    "PartnerProjectTitle",
    "OpportunityType",
    "PartnerOpportunityIdentifier",
    "Industry",
    "AwsAccountId",
    "Origin",
    "NextStep",
    "CosellMotion",
    "OpportunityOwner",
    "EngagementScore",
    "EstimatedMrr",
    "Tags",
    "OfferId",
    "OfferSetId",
    "ApnPrograms",
]


def test_every_sort_key_in_both_orders(pc, ctl):
    ids = ctl("seed", {"opportunities": 40, "seed": 3})["opportunity_ids"]
    everything = pc.search_opportunities(Catalog="AWS", MaxResults=100)["OpportunitySearchSummaries"]
    assert len(everything) == 40
    for key in SORTABLE:
        orders = {}
        for order in ("ASCENDING", "DESCENDING"):
            got = _opp_ids(pc, Sort={"SortBy": key, "SortOrder": order}, MaxResults=7)
            assert sorted(got) == sorted(ids), key
            orders[order] = got
        if key in ("OpportunityId", "LastModifiedDate", "CreatedDate"):  # unique values: exact reversal
            assert orders["ASCENDING"] == orders["DESCENDING"][::-1], key


def test_sort_values_and_tie_break(pc, ctl):
    ctl("seed", {"opportunities": 40, "seed": 4})
    by_name = pc.search_opportunities(
        Catalog="AWS", MaxResults=100, Sort={"SortBy": "CustomerCompanyName", "SortOrder": "ASCENDING"}
    )["OpportunitySearchSummaries"]
    keys = [(s["Customer"]["Account"]["CompanyName"].casefold(), int(s["Id"][1:])) for s in by_name]
    assert keys == sorted(keys)
    by_mrr = pc.search_opportunities(
        Catalog="AWS", MaxResults=100, Sort={"SortBy": "EstimatedMrr", "SortOrder": "DESCENDING"}
    )["OpportunitySearchSummaries"]
    mrr = [float(s["Project"]["ExpectedCustomerSpend"][0]["Amount"]) for s in by_mrr]
    assert mrr == sorted(mrr, reverse=True)
    # Default: LastModifiedDate, newest first.
    default = pc.search_opportunities(Catalog="AWS", MaxResults=100)["OpportunitySearchSummaries"]
    stamps = [s["LastModifiedDate"] for s in default]
    assert stamps == sorted(stamps, reverse=True)
    # EngagementScore sorts by level (High > Medium > Low), unscored last.
    levels = {"High": 2, "Medium": 1, "Low": 0}
    by_score = pc.search_opportunities(
        Catalog="AWS", MaxResults=100, Sort={"SortBy": "EngagementScore", "SortOrder": "DESCENDING"}
    )["OpportunitySearchSummaries"]
    ranks = [
        levels[s["AwsOpportunitySummary"]["Insights"]["EngagementScore"]]
        if "AwsOpportunitySummary" in s
        else -1
        for s in by_score
    ]
    assert ranks == sorted(ranks, reverse=True)
    assert -1 in ranks
    assert 2 in ranks


def test_paging_has_no_duplicates_or_misses(pc, ctl):
    ids = ctl("seed", {"opportunities": 230, "seed": 5})["opportunity_ids"]
    first = pc.search_opportunities(Catalog="AWS")
    assert len(first["OpportunitySearchSummaries"]) == 20  # default page size
    for order in ("ASCENDING", "DESCENDING"):
        sort = {"SortBy": "Stage", "SortOrder": order}  # many ties: the Id tie-break keeps pages stable
        pages = []
        token = None
        while True:
            page = pc.search_opportunities(
                Catalog="AWS", Sort=sort, MaxResults=13, **({"NextToken": token} if token else {})
            )
            pages.append([s["Id"] for s in page["OpportunitySearchSummaries"]])
            token = page.get("NextToken")
            if not token:
                break
        flat = [i for p in pages for i in p]
        assert len(flat) == len(set(flat)) == 230
        assert set(flat) == set(ids)
        assert all(len(p) == 13 for p in pages[:-1])
        one_page = pc.search_opportunities(Catalog="AWS", Sort=sort, MaxResults=100)[
            "OpportunitySearchSummaries"
        ]
        assert flat[:100] == [s["Id"] for s in one_page]


def test_next_token_is_bound_to_its_query(pc, ctl):
    ctl("seed", {"opportunities": 30, "seed": 6})
    token = pc.search_opportunities(Catalog="AWS", MaxResults=5)["NextToken"]
    # The same query continues, with any page size.
    more = pc.search_opportunities(Catalog="AWS", MaxResults=10, NextToken=token)[
        "OpportunitySearchSummaries"
    ]
    assert len(more) == 10
    for other in (
        {"Keyword": "a"},
        {"Sort": {"SortBy": "CreatedDate", "SortOrder": "ASCENDING"}},
        {"Filter": _eq("Stage", "Prospect")},
    ):
        err = _validation(pc, NextToken=token, **other)
        assert err["ErrorList"][0]["FieldName"] == "NextToken"
    _validation(pc, NextToken="not-a-token")


def test_paging_survives_changes_between_pages(pc, ctl):
    ids = ctl("seed", {"opportunities": 30, "seed": 7})["opportunity_ids"]
    sort = {"SortBy": "OpportunityId", "SortOrder": "ASCENDING"}
    first = pc.search_opportunities(Catalog="AWS", Sort=sort, MaxResults=10)
    pc.create_opportunity(**opportunity_payload())  # a new, higher id arrives between pages
    rest = _all_pages(
        pc.search_opportunities,
        "OpportunitySearchSummaries",
        Catalog="AWS",
        Sort=sort,
        MaxResults=10,
        NextToken=first["NextToken"],
    )
    seen = [s["Id"] for s in first["OpportunitySearchSummaries"]] + [s["Id"] for s in rest]
    assert seen[:30] == sorted(ids, key=lambda i: int(i[1:]))
    assert len(seen) == 31


# ------------------------------------------------------------------------------ disabled, summaries
def test_disabled_search_is_access_denied_with_reason(pc, ctl):
    ctl("seed", {"opportunities": 3})
    assert ctl("config", {"search_enabled": False})["search_enabled"] is False
    with pytest.raises(ClientError) as exc:
        pc.search_opportunities(Catalog="AWS")
    err = _error(exc)
    assert err["Error"]["Code"] == "AccessDeniedException"
    assert err["Reason"] == "SEARCH_OPPORTUNITIES_NOT_ENABLED"
    # Engagement search is not affected; reset switches search back on.
    pc.search_engagements(Catalog="AWS")
    ctl("reset")
    assert pc.search_opportunities(Catalog="AWS")["OpportunitySearchSummaries"] == []


def test_summary_shape_team_and_insights(pc, ctl):
    oid = _create(
        pc,
        "Umbrella Health",
        "Claims analytics",
        "Prospect",
        "US",
        "2500",
        Tags=[{"Key": "tier", "Value": "gold"}],
    )
    draft = pc.search_opportunities(Catalog="AWS", Filter=_eq("OpportunityId", oid))[
        "OpportunitySearchSummaries"
    ][0]
    assert "AwsOpportunitySummary" not in draft  # AWS has not seen it yet
    assert draft["Tags"] == [{"Key": "tier", "Value": "gold"}]
    assert draft["Project"]["ExpectedCustomerSpend"] == [{"Amount": "2500", "CurrencyCode": "USD"}]
    assert draft["Customer"]["Account"] == {
        "CompanyName": "Umbrella Health",
        "Industry": "Software and Internet",
        "Address": {"CountryCode": "US"},
    }
    pc.assign_opportunity(
        Catalog="AWS",
        Identifier=oid,
        Assignee={
            "Email": "sam@partner.example",
            "FirstName": "Sam",
            "LastName": "Owner",
            "BusinessTitle": "PartnerAccountManager",
            "Phone": "+12065550100",
        },
    )
    associate_solution(pc, oid)
    pc.submit_opportunity(Catalog="AWS", Identifier=oid, InvolvementType="Co-Sell")
    got = pc.search_opportunities(Catalog="AWS", Filter=_eq("OpportunityId", oid))[
        "OpportunitySearchSummaries"
    ][0]
    assert got["OpportunityTeam"] == [
        {"FirstName": "Sam", "LastName": "Owner", "BusinessTitle": "PartnerAccountManager"}
    ]
    assert got["RelatedEntityIdentifiers"]["Solutions"] == ["S-1000001"]
    aws = got["AwsOpportunitySummary"]
    assert aws["Origin"] == "Partner Referral"
    assert aws["CosellMotion"]
    assert aws["Insights"]["EngagementScore"] in ("High", "Medium", "Low")
    assert "OpportunityQuality" not in aws["Insights"]  # not scored while only Submitted
    assert _opp_ids(pc, Filter=_pred("ContainsAny", "OpportunityOwner", StringValue="sam own")) == [oid]
    # The same values in GetAwsOpportunitySummary, and stable across calls.
    summary = pc.get_aws_opportunity_summary(Catalog="AWS", RelatedOpportunityIdentifier=oid)
    assert summary["Insights"]["EngagementScore"] == aws["Insights"]["EngagementScore"]
    assert summary["CosellMotion"] == aws["CosellMotion"]
    ctl("simulate/review", {"identifier": oid, "review_status": "Approved"})
    approved = pc.search_opportunities(Catalog="AWS", Filter=_eq("OpportunityId", oid))[
        "OpportunitySearchSummaries"
    ][0]
    score = approved["AwsOpportunitySummary"]["Insights"]["OpportunityQuality"]["Score"]
    assert 0 <= score <= 100


def test_simulated_insights_are_searchable_without_touching_the_record(pc, ctl):
    oid = _create(pc, "Soylent Foods", "Forecasting", "Prospect", "US", "900")
    associate_solution(pc, oid)
    pc.submit_opportunity(Catalog="AWS", Identifier=oid, InvolvementType="Co-Sell")
    before = pc.get_opportunity(Catalog="AWS", Identifier=oid)["LastModifiedDate"]
    # Prime the search cache; the control must invalidate it.
    pc.search_opportunities(Catalog="AWS", Filter=_eq("EngagementScore", "High"))
    ctl(
        "simulate/insights",
        {
            "opportunity_id": oid,
            "engagement_score": "High",
            "quality_score": 87,
            "origin": "AWS Referral",
            "cosell_motion": "Agent-engaged",
        },
    )
    assert pc.get_opportunity(Catalog="AWS", Identifier=oid)["LastModifiedDate"] == before
    assert _opp_ids(pc, Filter=_eq("EngagementScore", "High")) == [oid]
    assert _opp_ids(pc, Filter=_eq("CosellMotion", "Agent-engaged")) == [oid]
    assert _opp_ids(pc, Filter=_eq("Origin", "AWS Referral")) == [oid]
    aws = pc.search_opportunities(Catalog="AWS", Filter=_eq("OpportunityId", oid))[
        "OpportunitySearchSummaries"
    ][0]["AwsOpportunitySummary"]
    assert aws == {
        "Origin": "AWS Referral",
        "CosellMotion": "Agent-engaged",
        "Insights": {"EngagementScore": "High", "OpportunityQuality": {"Score": 87}},
    }
    ctl("simulate/insights", {"opportunity_id": oid, "engagement_score": "Low", "quality_score": None})
    aws = pc.search_opportunities(Catalog="AWS", Filter=_eq("OpportunityId", oid))[
        "OpportunitySearchSummaries"
    ][0]["AwsOpportunitySummary"]
    assert aws["Insights"] == {"EngagementScore": "Low"}


def test_tag_changes_are_searchable(pc):
    oid = _create(pc, "Hooli", "Search platform", "Prospect", "US", "100")
    assert _opp_ids(pc, Filter=_eq("Tags", "team:blue")) == []
    arn = pc.get_opportunity(Catalog="AWS", Identifier=oid)["Arn"]
    pc.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "blue"}])
    assert _opp_ids(pc, Filter=_eq("Tags", "team:blue")) == [oid]
    pc.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert _opp_ids(pc, Filter=_eq("Tags", "team:blue")) == []


def test_marketplace_offer_keys(pc):
    oid = _create(pc, "Stark Industries", "Marketplace deal", "Prospect", "US", "100")
    other = _create(pc, "Wayne Enterprises", "Other deal", "Prospect", "US", "100")
    for kind, arn in (("AwsMarketplaceOffers", OFFER_ARN), ("AwsMarketplaceOfferSets", OFFER_SET_ARN)):
        pc.associate_opportunity(
            Catalog="AWS", OpportunityIdentifier=oid, RelatedEntityType=kind, RelatedEntityIdentifier=arn
        )
    assert _opp_ids(pc, Filter=_eq("OfferId", "offer-abc123")) == [oid]
    assert _opp_ids(pc, Filter=_eq("OfferSetId", "offerset-xyz789")) == [oid]
    assert _opp_ids(pc, Filter={"NotFilter": _pred("ContainsAny", "OfferId", StringValue="offer-")}) == [
        other
    ]
    got = pc.search_opportunities(Catalog="AWS", Filter=_eq("OfferId", "offer-abc123"))[
        "OpportunitySearchSummaries"
    ][0]
    assert got["RelatedEntityIdentifiers"]["AwsMarketplaceOffers"] == [OFFER_ARN]


# ------------------------------------------------------------------------------------------ engagements
def _groups(emu: Any) -> dict[str, dict[str, Any]]:
    return {g["Name"]: g for g in emu.backend.engagement_groups("AWS").values()}


def _eng_ids(pc: Any, **kwargs: Any) -> list[str]:
    return [
        e["Id"]
        for e in _all_pages(pc.search_engagements, "EngagementSearchSummaries", Catalog="AWS", **kwargs)
    ]


def test_search_engagements_filters_keyword_and_sort(pc, ctl):
    ids = ctl("seed", {"engagements": 60, "seed": 1})["engagement_ids"]
    everything = _all_pages(pc.search_engagements, "EngagementSearchSummaries", Catalog="AWS", MaxResults=100)
    assert {e["Id"] for e in everything} == set(ids)
    created = [e["CreatedAt"] for e in everything]
    assert created == sorted(created, reverse=True)  # default: creation time, newest first
    first = pc.search_engagements(Catalog="AWS")
    assert len(first["EngagementSearchSummaries"]) == 20
    assert first["NextToken"]

    def lead(e: dict[str, Any]) -> dict[str, Any]:
        return next(c["Payload"]["Lead"] for c in e["Contexts"] if c["Type"] == "Lead")

    us = _eng_ids(pc, Filter=_eq("LeadCustomerCountryCode", "US"))
    assert us
    assert set(us) == {e["Id"] for e in everything if lead(e)["Customer"]["Address"]["CountryCode"] == "US"}
    two_members = _eng_ids(pc, Filter=_pred("EqualsTo", "MemberCount", LongValue=2))
    assert set(two_members) == {e["Id"] for e in everything if e["MemberCount"] == 2}
    assert 0 < len(two_members) < 60
    prospected = set(_eng_ids(pc, Filter=_eq("ContextType", "ProspectingResult")))
    assert prospected == {
        e["Id"] for e in everything if any(c["Type"] == "ProspectingResult" for c in e["Contexts"])
    }
    # Per-interaction fields are multi-valued: ContainsAll needs each value on some interaction.
    sample = next(
        e
        for e in everything
        if len(lead(e)["Interactions"]) == 2
        and len({i["Contact"]["FirstName"] for i in lead(e)["Interactions"]}) == 2
    )
    names = [i["Contact"]["FirstName"] for i in lead(sample)["Interactions"]]
    both = _eng_ids(
        pc, Filter=_pred("ContainsAll", "LeadInteractionsContactFirstName", StringListValue=names)
    )
    assert sample["Id"] in both
    assert all(
        {*names} <= {i["Contact"]["FirstName"] for i in lead(e)["Interactions"]}
        for e in everything
        if e["Id"] in both
    )
    # A single-valued field holding two different values at once: nothing.
    assert (
        _eng_ids(pc, Filter=_pred("ContainsAll", "LeadCustomerCountryCode", StringListValue=["US", "GB"]))
        == []
    )
    created_mid = sorted(created)[30]
    later = _eng_ids(pc, Filter=_pred("GreaterThanOrEquals", "CreatedAt", DateValue=created_mid))
    assert len(later) == 30
    # Keyword: title, description, customer and member company names; with a filter both narrow.
    company = lead(everything[0])["Customer"]["CompanyName"]
    hits = _eng_ids(pc, Keyword=company.upper())
    assert everything[0]["Id"] in hits
    assert (
        len(_eng_ids(pc, Keyword="amazon web services")) == 60
    )  # AWS is a member of every seeded engagement
    narrowed = _eng_ids(pc, Keyword=company, Filter={"NotFilter": _eq("EngagementId", everything[0]["Id"])})
    assert everything[0]["Id"] not in narrowed
    by_title = _all_pages(
        pc.search_engagements,
        "EngagementSearchSummaries",
        Catalog="AWS",
        MaxResults=9,
        Sort={"SortBy": "Title", "SortOrder": "ASCENDING"},
    )
    titles = [(e["Title"].casefold(), e["Id"]) for e in by_title]
    assert titles == sorted(titles)
    assert len(titles) == 60
    with pytest.raises(ClientError) as exc:
        pc.search_engagements(Catalog="AWS", Filter=_pred("GreaterThan", "Title", StringValue="A"))
    assert _error(exc)["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        pc.search_engagements(
            Catalog="AWS", Filter=_pred("GreaterThan", "MemberCount", DateValue=created_mid)
        )
    assert _error(exc)["Error"]["Code"] == "ValidationException"


def test_search_engagements_by_group(pc, ctl, emu):
    ctl("seed", {"engagements": 80, "seed": 2})
    groups = _groups(emu)
    listed = {
        g["Id"]: g
        for g in pc.list_engagement_groups(Catalog="AWS", MaxResults=100)["EngagementGroupSummaries"]
    }
    us_sw = groups["US software and internet leads"]
    members = _all_pages(
        pc.search_engagements, "EngagementSearchSummaries", Catalog="AWS", GroupId=us_sw["Id"], MaxResults=3
    )
    assert members
    assert len(members) == listed[us_sw["Id"]]["Count"]
    for e in members:
        lead = next(c["Payload"]["Lead"] for c in e["Contexts"] if c["Type"] == "Lead")
        assert lead["Customer"]["Address"]["CountryCode"] == "US"
        assert lead["Customer"]["Industry"] == "Software and Internet"
    everything = _eng_ids(pc)
    for group in listed.values():
        assert len(_eng_ids(pc, GroupId=group["Id"])) == group["Count"]
    # GroupId and Filter both narrow.
    high = set(_eng_ids(pc, GroupId=groups["High-readiness leads"]["Id"]))
    high_us = set(
        _eng_ids(
            pc, GroupId=groups["High-readiness leads"]["Id"], Filter=_eq("LeadCustomerCountryCode", "US")
        )
    )
    assert high_us <= high
    assert high_us == high & set(_eng_ids(pc, Filter=_eq("LeadCustomerCountryCode", "US")))
    assert len(high) < len(everything)
    # Unknown, inactive or other-catalog groups are a ValidationException.
    retired = groups["Retired 2024 campaign leads"]["Id"]
    sandbox_group = next(iter(emu.backend.engagement_groups("Sandbox")))
    for gid in ("eng-grp-00000000000000", retired):
        with pytest.raises(ClientError) as exc:
            pc.search_engagements(Catalog="AWS", GroupId=gid)
        assert _error(exc)["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        pc.search_engagements(Catalog="AWS", GroupId=sandbox_group)
    assert _error(exc)["Error"]["Code"] == "ValidationException"


def test_list_engagement_groups_filters_sort_and_paging(pc, ctl, emu):
    ctl("seed", {"engagements": 50, "seed": 3})
    groups = _groups(emu)
    active = {g["Id"] for g in groups.values() if g["Active"]}
    pages = []
    token = None
    while True:
        page = pc.list_engagement_groups(
            Catalog="AWS", MaxResults=2, **({"NextToken": token} if token else {})
        )
        pages.append(page["EngagementGroupSummaries"])
        token = page.get("NextToken")
        if not token:
            break
    flat = [g["Id"] for p in pages for g in p]
    assert len(flat) == len(set(flat)) == len(active) == 5
    assert set(flat) == active
    assert [len(p) for p in pages] == [2, 2, 1]
    # Recommended order: SalesReady first, LowPotential last.
    levels = [g["ReadinessLevel"] for p in pages for g in p]
    assert levels == sorted(levels, key=["SalesReady", "MarketingReady", "LowPotential"].index)
    sales = pc.list_engagement_groups(Catalog="AWS", ReadinessLevel="SalesReady")["EngagementGroupSummaries"]
    assert {g["ReadinessLevel"] for g in sales} == {"SalesReady"}
    assert len(sales) == 2
    by_count = pc.list_engagement_groups(Catalog="AWS", Sort={"SortBy": "Count", "SortOrder": "DESCENDING"})[
        "EngagementGroupSummaries"
    ]
    counts = [g["Count"] for g in by_count]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > 0
    by_updated = pc.list_engagement_groups(
        Catalog="AWS", Sort={"SortBy": "UpdatedAt", "SortOrder": "ASCENDING"}
    )["EngagementGroupSummaries"]
    stamps = [g["UpdatedAt"] for g in by_updated]
    assert stamps == sorted(stamps)
    high = groups["High-readiness leads"]
    picked = pc.list_engagement_groups(
        Catalog="AWS",
        EngagementGroupIdentifiers=[
            high["Arn"],
            groups["Retired 2024 campaign leads"]["Id"],
            "eng-grp-zzzzzzzzzzzzzz",
        ],
    )["EngagementGroupSummaries"]
    assert [g["Id"] for g in picked] == [high["Id"]]
    assert picked[0]["Arn"] == high["Arn"]
    assert picked[0]["Catalog"] == "AWS"
    assert picked[0]["Description"]
    with pytest.raises(ClientError) as exc:
        pc.list_engagement_groups(Catalog="AWS", ReadinessLevel="LowPotential", NextToken=page_token(pc))
    assert _error(exc)["Error"]["Code"] == "ValidationException"


def page_token(pc: Any) -> str:
    """A NextToken of the unfiltered group listing."""
    return pc.list_engagement_groups(Catalog="AWS", MaxResults=1)["NextToken"]


# --------------------------------------------------------------------------- conformance test driver
def drive_search(pc: Any, ctl: Any) -> None:
    """Call SearchOpportunities, SearchEngagements and ListEngagementGroups with fully populated results."""
    payload = opportunity_payload(Tags=[{"Key": "source", "Value": "crm"}])
    payload["Customer"]["Account"]["AwsAccountId"] = "111122223333"
    payload["Project"]["ApnPrograms"] = ["ISV Accelerate Program"]
    oid = pc.create_opportunity(**copy.deepcopy(payload))["Id"]
    pc.assign_opportunity(
        Catalog="AWS",
        Identifier=oid,
        Assignee={
            "Email": "owner@partner.example",
            "FirstName": "Sam",
            "LastName": "Owner",
            "BusinessTitle": "PartnerAccountManager",
        },
    )
    associate_solution(pc, oid)
    pc.associate_opportunity(
        Catalog="AWS",
        OpportunityIdentifier=oid,
        RelatedEntityType="AwsMarketplaceOffers",
        RelatedEntityIdentifier=OFFER_ARN,
    )
    pc.submit_opportunity(Catalog="AWS", Identifier=oid, InvolvementType="Co-Sell")
    ctl(
        "simulate/insights",
        {
            "opportunity_id": oid,
            "engagement_score": "High",
            "quality_score": 72,
            "cosell_motion": "AWS Field-engaged",
        },
    )
    found = pc.search_opportunities(
        Catalog="AWS",
        Keyword="acme",
        Filter={
            "AndAllFilters": [_eq("OpportunityId", oid), _pred("GreaterThan", "EstimatedMrr", LongValue=1)]
        },
        Sort={"SortBy": "LastModifiedDate", "SortOrder": "DESCENDING"},
        MaxResults=10,
    )["OpportunitySearchSummaries"]
    assert [s["Id"] for s in found] == [oid]
    summary = found[0]
    for member in (
        "LifeCycle",
        "Customer",
        "Project",
        "Tags",
        "RelatedEntityIdentifiers",
        "OpportunityTeam",
        "AwsOpportunitySummary",
    ):
        assert member in summary, member
    assert summary["AwsOpportunitySummary"]["Insights"]["OpportunityQuality"]["Score"] == 72
    ctl("seed", {"engagements": 12, "seed": 9})
    groups = pc.list_engagement_groups(Catalog="AWS", MaxResults=10)["EngagementGroupSummaries"]
    assert groups
    assert all(g["Count"] is not None for g in groups)
    busiest = max(groups, key=lambda g: g["Count"])
    engagements = pc.search_engagements(Catalog="AWS", GroupId=busiest["Id"], MaxResults=5)[
        "EngagementSearchSummaries"
    ]
    assert engagements
    assert engagements[0]["Contexts"]
    pc.search_engagements(
        Catalog="AWS", Keyword="lead", Sort={"SortBy": "CreatedAt", "SortOrder": "ASCENDING"}
    )


def test_drive_search(pc, ctl):
    drive_search(pc, ctl)
