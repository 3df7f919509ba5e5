"""Customer accounts: create/get/update/delete, asynchronous AWS matching, search and statistics.

Matching is driven by the emulator clock (``POST /_emulator/clock``) and the AWS customer directory
(``POST /_emulator/customer-directory``), never by sleeping.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from emulators.partner_central import PartnerCentralEmulator

ARN_RE = re.compile(
    r"arn:aws:partnercentral:us-east-1:[0-9]{12}:catalog/AWS/customer-account/cust-acc-[0-9a-z]{13}"
)
MATCH_SECONDS = 61  # the emulator finishes a match 60 s of emulator time after create/update


def account_data(**overrides: Any) -> dict[str, Any]:
    """A complete ``CustomerAccountData`` for AnyCompany (a customer in the seeded AWS directory)."""
    data: dict[str, Any] = {
        "CompanyName": "AnyCompany Holdings",
        "WebsiteUrl": "https://www.anycompany.com",
        "Domain": "anycompany.com",
        "Duns": "123456789",
        "Industry": "Software and Internet",
        "ParentCompanyName": "AnyCompany Group",
        "Address": {
            "StreetAddress": "1 Main Street",
            "City": "Seattle",
            "StateOrRegion": "Washington",
            "PostalCode": "98101",
            "CountryCode": "US",
        },
    }
    data.update(overrides)
    return data


def create(pc: Any, catalog: str = "AWS", **kwargs: Any) -> dict[str, Any]:
    """CreateCustomerAccount with a complete AnyCompany account unless ``Account`` is given."""
    kwargs.setdefault("Account", account_data())
    return pc.create_customer_account(Catalog=catalog, **kwargs)


def get(pc: Any, identifier: str, catalog: str = "AWS") -> dict[str, Any]:
    """GetCustomerAccount."""
    return pc.get_customer_account(Catalog=catalog, Identifier=identifier)


def finish_matching(ctl: Any) -> None:
    """Advance the emulator clock past the matching delay."""
    ctl("clock", {"advance_seconds": MATCH_SECONDS})


def unique_domain(label: str) -> str:
    """A domain no other test or driver uses."""
    return f"{label}-{time.time_ns()}.example"


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    """The AWS error code of a ClientError."""
    return err.value.response["Error"]["Code"]


# ------------------------------------------------------------------------------------- conformance driver
def drive_customer_accounts(pc: Any, ctl: Any) -> None:
    """Call the six customer account operations successfully, with fully populated outputs.

    Uses its own directory entry so accounts other drivers created cannot turn its first account into a
    duplicate.
    """
    domain = unique_domain("drive")
    ctl(
        "customer-directory",
        {
            "domain": domain,
            "duns": "555000111",
            "account_name": "Drive Corp",
            "industry": "Retail",
            "sub_industry": "E-commerce",
            "sector": "Private",
            "segment": "Enterprise",
            "company_size": "1001-5000",
            "region": "NAMER",
            "sub_region": "US West",
            "geo": "AMER",
            "country": "US",
            "account_planning_qualification": "Qualified",
            "eligible_programs": ["MAP", "ISV Accelerate"],
            "marketplace_engagement_score": "High",
            "solution_category": "Analytics",
            "solution_score": "Medium",
            "solution_sub_category": "Data Lakes",
        },
    )
    first = create(
        pc,
        Account=account_data(
            CompanyName="Drive Corp",
            Domain=domain,
            WebsiteUrl=f"https://www.{domain}",
            Industry="Other",
            OtherIndustry="Retail technology",
        ),
        PartnerAccountIdentifier="crm-drive-1",
        Tags=[{"Key": "source", "Value": "drive"}],
        ClientToken=f"drive-ca-{time.time_ns()}",
    )
    second = create(
        pc,
        Account=account_data(
            CompanyName="Drive Corp EU", Domain=domain, WebsiteUrl="https://eu.other.example"
        ),
        PartnerAccountIdentifier="crm-drive-2",
    )
    no_match = create(pc, Account=account_data(CompanyName="Nobody", Domain=unique_domain("nobody")))
    finish_matching(ctl)
    enriched = get(pc, first["Id"])
    assert enriched["EnrichmentStatus"] == "ENRICHED"
    assert enriched["AwsEnrichment"]["Insights"]["SolutionSubCategory"] == "Data Lakes"
    duplicate = get(pc, second["Id"])
    assert duplicate["ReasonCode"] == "DUPLICATE_CUSTOMER_MATCH"
    assert duplicate["ExistingCustomerAccountArn"] == first["Arn"]
    assert duplicate["Issues"]
    current = get(pc, no_match["Id"])
    updated = pc.update_customer_account(
        Catalog="AWS",
        Identifier=no_match["Id"],
        Account=account_data(CompanyName="Nobody Ltd", Domain=unique_domain("nobody")),
        PartnerAccountIdentifier="crm-drive-3",
        LastModifiedDate=current["LastModifiedDate"],
    )
    assert updated["Status"] == "PENDING"
    enriched_filter = {"EqualsTo": {"Key": "ENRICHMENT_STATUS", "Value": {"StringValue": "ENRICHED"}}}
    page = pc.search_customer_accounts(
        Catalog="AWS",
        Filter=enriched_filter,
        Sort={"SortBy": "COMPANY_NAME", "SortOrder": "ASCENDING"},
        MaxResults=1,
    )
    assert page["CustomerAccountSummaries"]
    every = pc.search_customer_accounts(Catalog="AWS", MaxResults=1)
    assert "NextToken" in every
    pc.search_customer_accounts(Catalog="AWS", MaxResults=1, NextToken=every["NextToken"])
    stats = pc.get_customer_account_statistics(
        Catalog="AWS",
        Filter={"NotFilter": {"EqualsTo": {"Key": "COMPANY_NAME", "Value": {"StringValue": "nobody"}}}},
        Aggregations=[{"GroupBy": ["ENRICHMENT_STATUS"]}, {"GroupBy": ["PROGRAM_ELIGIBILITY"]}],
        IncludeMissing=True,
    )
    assert stats["TotalCount"] >= 2
    pc.delete_customer_account(Catalog="AWS", Identifier=second["Id"])


# ----------------------------------------------------------------------------------------- create / get
def test_create_returns_pending_account_and_get_returns_what_was_sent(pc):
    tags = [{"Key": "team", "Value": "emea"}]
    created = create(pc, PartnerAccountIdentifier="crm-42", Tags=tags)
    assert created["Status"] == "PENDING"
    assert created["Catalog"] == "AWS"
    assert created["PartnerAccountIdentifier"] == "crm-42"
    assert re.fullmatch(r"cust-acc-[0-9a-z]{13}", created["Id"])
    assert ARN_RE.fullmatch(created["Arn"])
    assert created["Arn"].endswith(created["Id"])
    got = get(pc, created["Id"])
    assert got["Account"] == account_data()
    assert got["EnrichmentStatus"] == "PENDING"
    assert got["CreatedDate"] == created["CreatedDate"] == got["LastModifiedDate"]
    assert got["Tags"] == tags
    assert "AwsEnrichment" not in got
    assert "ReasonCode" not in got
    # The ARN identifies the account as well as the id; another catalog does not know it.
    assert get(pc, created["Arn"])["Id"] == created["Id"]
    with pytest.raises(ClientError) as err:
        get(pc, created["Id"], catalog="Sandbox")
    assert error_code(err) == "ResourceNotFoundException"


def test_get_unknown_account_is_not_found(pc):
    with pytest.raises(ClientError) as err:
        get(pc, "cust-acc-0000000000000")
    assert error_code(err) == "ResourceNotFoundException"


def test_client_token_makes_create_idempotent(pc):
    first = create(pc, ClientToken="same-token")
    again = create(pc, ClientToken="same-token")
    assert again["Id"] == first["Id"]
    with pytest.raises(ClientError) as err:
        create(pc, ClientToken="same-token", Account=account_data(CompanyName="Someone Else"))
    assert error_code(err) == "ConflictException"
    # Without a token every call creates another account.
    assert create(pc)["Id"] != create(pc)["Id"]
    assert len(pc.search_customer_accounts(Catalog="AWS")["CustomerAccountSummaries"]) == 3


@pytest.mark.parametrize(
    ("account", "field"),
    [
        (account_data(Industry="Other"), "Account.OtherIndustry"),
        (account_data(Domain="https://anycompany.com"), "Account.Domain"),
        (account_data(CompanyName="   "), "Account.CompanyName"),
    ],
)
def test_business_rules_on_account_data(pc, account, field):
    with pytest.raises(ClientError) as err:
        create(pc, Account=account)
    body = err.value.response
    assert error_code(err) == "ValidationException"
    assert body["Reason"] == "BUSINESS_VALIDATION_FAILED"
    assert [e["FieldName"] for e in body["ErrorList"]] == [field]
    assert pc.search_customer_accounts(Catalog="AWS")["CustomerAccountSummaries"] == []


def test_model_validation_rejects_a_malformed_duns(raw):
    with pytest.raises(ClientError) as err:
        raw.create_customer_account(Catalog="AWS", Account=account_data(Duns="12-345"))
    assert error_code(err) == "ValidationException"
    assert err.value.response["ErrorList"][0]["FieldName"] == "Account.Duns"


def test_other_industry_with_a_description_is_accepted(pc):
    created = create(pc, Account=account_data(Industry="Other", OtherIndustry="Space tourism"))
    assert get(pc, created["Id"])["Account"]["OtherIndustry"] == "Space tourism"


def test_account_limit_gives_service_quota_exceeded(pc, ctl):
    ctl("config", {"customer_account_limit": 1})
    create(pc)
    with pytest.raises(ClientError) as err:
        create(pc, Account=account_data(Domain="octank.com"))
    assert error_code(err) == "ServiceQuotaExceededException"


# ----------------------------------------------------------------------------------------- enrichment
def test_matching_finishes_enriched_with_the_directory_data(pc, ctl):
    created = create(pc)
    before = get(pc, created["Id"])
    assert before["EnrichmentStatus"] == "PENDING"
    ctl("clock", {"advance_seconds": 30})
    assert get(pc, created["Id"])["EnrichmentStatus"] == "PENDING"
    ctl("clock", {"advance_seconds": 31})
    after = get(pc, created["Id"])
    assert after["EnrichmentStatus"] == "ENRICHED"
    assert after["AwsEnrichment"] == {
        "Customer": {
            "AccountName": "AnyCompany",
            "Industry": "Software and Internet",
            "SubIndustry": "SaaS",
            "Sector": "Private",
            "Segment": "Enterprise",
            "CompanySize": "1001-5000",
            "Region": "NAMER",
            "SubRegion": "US West",
            "Geo": "AMER",
            "Country": "US",
            "CustomerAccountPlanningQualification": "Qualified",
            "EligiblePrograms": ["MAP", "ISV Accelerate"],
        },
        "Insights": {
            "MarketplaceEngagementScore": "High",
            "SolutionCategory": "Analytics",
            "SolutionScore": "High",
            "SolutionSubCategory": "Data Lakes",
        },
    }
    assert "Issues" not in after
    assert "ReasonCode" not in after
    # The match changed the account, so its LastModifiedDate moved.
    assert after["LastModifiedDate"] > before["LastModifiedDate"]


def test_unknown_domain_finishes_no_match_found(pc, ctl):
    created = create(pc, Account={"CompanyName": "Mystery LLC", "WebsiteUrl": "https://mystery.example"})
    finish_matching(ctl)
    got = get(pc, created["Id"])
    assert got["EnrichmentStatus"] == "NO_MATCH_FOUND"
    assert "AwsEnrichment" not in got
    assert "ReasonCode" not in got
    assert [i["Code"] for i in got["Issues"]] == ["NO_MATCH_FOUND"]
    assert got["Message"]


def test_directory_entry_added_by_control_is_matched_by_website_host(pc, ctl):
    domain = unique_domain("newco")
    ctl(
        "customer-directory",
        {"domain": domain, "industry": "Gaming", "segment": "SMB", "eligible_programs": ["POC Funding"]},
    )
    created = create(pc, Account={"CompanyName": "NewCo", "WebsiteUrl": f"https://www.{domain}/about"})
    finish_matching(ctl)
    got = get(pc, created["Id"])
    assert got["EnrichmentStatus"] == "ENRICHED"
    assert got["AwsEnrichment"]["Customer"] == {
        "Industry": "Gaming",
        "Segment": "SMB",
        "EligiblePrograms": ["POC Funding"],
    }
    assert domain in [e["Domain"] for e in ctl("customer-directory", method="GET")["entries"]]


def test_second_account_of_the_same_customer_needs_action(pc, ctl):
    first = create(pc)
    # Same customer: www. prefix and case differ, the domain normalises to anycompany.com.
    second = create(pc, Account={"CompanyName": "AnyCo", "WebsiteUrl": "https://WWW.AnyCompany.com/shop"})
    finish_matching(ctl)
    assert get(pc, first["Id"])["EnrichmentStatus"] == "ENRICHED"
    dup = get(pc, second["Id"])
    assert dup["EnrichmentStatus"] == "ACTION_REQUIRED"
    assert dup["ReasonCode"] == "DUPLICATE_CUSTOMER_MATCH"
    assert dup["ExistingCustomerAccountArn"] == first["Arn"]
    assert "AwsEnrichment" not in dup
    assert [i["Code"] for i in dup["Issues"]] == ["DUPLICATE_CUSTOMER_MATCH"]


def test_same_duns_is_the_same_customer(pc, ctl):
    first = create(pc, Account={"CompanyName": "Octank", "Domain": "octank.com"})
    second = create(pc, Account={"CompanyName": "Octank GmbH", "Duns": "987654321"})
    finish_matching(ctl)
    dup = get(pc, second["Id"])
    assert (dup["ReasonCode"], dup["ExistingCustomerAccountArn"]) == (
        "DUPLICATE_CUSTOMER_MATCH",
        first["Arn"],
    )


def test_duplicate_resolved_by_updating_to_another_customer(pc, ctl):
    create(pc)
    second = create(pc)
    finish_matching(ctl)
    dup = get(pc, second["Id"])
    pc.update_customer_account(
        Catalog="AWS",
        Identifier=second["Id"],
        Account={"CompanyName": "Example Corp", "Domain": "example.com"},
        LastModifiedDate=dup["LastModifiedDate"],
    )
    finish_matching(ctl)
    fixed = get(pc, second["Id"])
    assert fixed["EnrichmentStatus"] == "ENRICHED"
    assert fixed["AwsEnrichment"]["Customer"]["AccountName"] == "Example Corp"
    assert "ReasonCode" not in fixed
    assert "ExistingCustomerAccountArn" not in fixed


def test_processing_error_needs_action(pc, ctl):
    created = create(pc, Account={"CompanyName": "Broken", "Domain": "processing-error.example"})
    finish_matching(ctl)
    got = get(pc, created["Id"])
    assert (got["EnrichmentStatus"], got["ReasonCode"]) == ("ACTION_REQUIRED", "PROCESSING_ERROR")
    assert "ExistingCustomerAccountArn" not in got


def test_domain_and_website_disagreeing_is_an_issue(pc, ctl):
    created = create(pc, Account=account_data(WebsiteUrl="https://www.unrelated.example"))
    finish_matching(ctl)
    got = get(pc, created["Id"])
    assert got["EnrichmentStatus"] == "ENRICHED"
    assert [i["Code"] for i in got["Issues"]] == ["DOMAIN_WEBSITE_MISMATCH"]


def test_enrichment_delay_is_configurable(pc, ctl):
    ctl("config", {"enrichment_delay_ms": 0})
    created = create(pc)
    assert created["Status"] == "PENDING"
    assert get(pc, created["Id"])["EnrichmentStatus"] == "ENRICHED"


# --------------------------------------------------------------------------------------------- update
def test_update_replaces_everything_and_matches_again(pc, ctl):
    created = create(pc, PartnerAccountIdentifier="crm-1")
    finish_matching(ctl)
    current = get(pc, created["Id"])
    assert current["EnrichmentStatus"] == "ENRICHED"
    updated = pc.update_customer_account(
        Catalog="AWS",
        Identifier=created["Arn"],
        Account={"CompanyName": "AnyCompany Renamed", "Domain": "anycompany.com"},
        LastModifiedDate=current["LastModifiedDate"],
    )
    assert updated["Status"] == "PENDING"
    assert updated["Id"] == created["Id"]
    assert updated["CreatedDate"] == created["CreatedDate"]
    assert updated["LastModifiedDate"] > current["LastModifiedDate"]
    assert "PartnerAccountIdentifier" not in updated
    got = get(pc, created["Id"])
    # Omitted fields are now null: only what the update sent is left.
    assert got["Account"] == {"CompanyName": "AnyCompany Renamed", "Domain": "anycompany.com"}
    assert "PartnerAccountIdentifier" not in got
    assert got["EnrichmentStatus"] == "PENDING"
    assert "AwsEnrichment" not in got
    assert got["LastModifiedDate"] == updated["LastModifiedDate"]
    finish_matching(ctl)
    assert get(pc, created["Id"])["EnrichmentStatus"] == "ENRICHED"


def test_update_with_stale_last_modified_date_conflicts(pc, ctl):
    created = create(pc)
    first = get(pc, created["Id"])
    pc.update_customer_account(
        Catalog="AWS",
        Identifier=created["Id"],
        Account=account_data(CompanyName="Version 2"),
        LastModifiedDate=first["LastModifiedDate"],
    )
    with pytest.raises(ClientError) as err:
        pc.update_customer_account(
            Catalog="AWS",
            Identifier=created["Id"],
            Account=account_data(CompanyName="Version 3"),
            LastModifiedDate=first["LastModifiedDate"],
        )
    assert error_code(err) == "ConflictException"
    assert get(pc, created["Id"])["Account"]["CompanyName"] == "Version 2"


def test_finished_match_makes_an_earlier_read_stale(pc, ctl):
    created = create(pc)
    pending = get(pc, created["Id"])
    finish_matching(ctl)
    with pytest.raises(ClientError) as err:
        pc.update_customer_account(
            Catalog="AWS",
            Identifier=created["Id"],
            Account=account_data(),
            LastModifiedDate=pending["LastModifiedDate"],
        )
    assert error_code(err) == "ConflictException"


def test_update_unknown_account_is_not_found(pc):
    with pytest.raises(ClientError) as err:
        pc.update_customer_account(
            Catalog="AWS",
            Identifier="cust-acc-0000000000000",
            Account=account_data(),
            LastModifiedDate=dt.datetime.now(dt.UTC),
        )
    assert error_code(err) == "ResourceNotFoundException"


# --------------------------------------------------------------------------------------------- delete
def test_delete_removes_the_account_and_is_idempotent(pc, ctl):
    created = create(pc, Tags=[{"Key": "k", "Value": "v"}])
    kept = create(pc, Account=account_data(Domain="octank.com"))
    pc.delete_customer_account(Catalog="AWS", Identifier=created["Id"])
    with pytest.raises(ClientError) as err:
        get(pc, created["Id"])
    assert error_code(err) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        pc.list_tags_for_resource(ResourceArn=created["Arn"])
    assert error_code(err) == "ResourceNotFoundException"
    # Deleting again (or by ARN) succeeds.
    pc.delete_customer_account(Catalog="AWS", Identifier=created["Id"])
    pc.delete_customer_account(Catalog="AWS", Identifier=created["Arn"])
    ids = [s["Id"] for s in pc.search_customer_accounts(Catalog="AWS")["CustomerAccountSummaries"]]
    assert ids == [kept["Id"]]
    finish_matching(ctl)
    assert pc.get_customer_account_statistics(Catalog="AWS")["TotalCount"] == 1


def test_tags_on_customer_accounts(pc):
    created = create(pc)
    pc.tag_resource(ResourceArn=created["Arn"], Tags=[{"Key": "tier", "Value": "gold"}])
    assert get(pc, created["Id"])["Tags"] == [{"Key": "tier", "Value": "gold"}]
    assert pc.list_tags_for_resource(ResourceArn=created["Arn"])["Tags"] == [{"Key": "tier", "Value": "gold"}]


# --------------------------------------------------------------------------------------------- search
@pytest.fixture
def book(pc, ctl):
    """Five matched accounts in AWS (four enriched, one not matched) plus one in Sandbox."""
    ids = {
        "any": create(pc, PartnerAccountIdentifier="crm-any")["Id"],
        "example": create(pc, Account={"CompanyName": "Example Corp", "Domain": "example.com"})["Id"],
        "octank": create(pc, Account={"CompanyName": "octank", "Domain": "octank.com"})["Id"],
        "org": create(pc, Account={"CompanyName": "AnyOrganization", "Domain": "anyorganization.org"})["Id"],
        "none": create(pc, Account={"CompanyName": "Zeta Unknown", "Domain": "zeta.example"})["Id"],
    }
    create(pc, catalog="Sandbox")
    finish_matching(ctl)
    return ids


def search_ids(pc: Any, **kwargs: Any) -> list[str]:
    """The ids on the first page of SearchCustomerAccounts."""
    return [s["Id"] for s in pc.search_customer_accounts(Catalog="AWS", **kwargs)["CustomerAccountSummaries"]]


def cond(key: str, **value: Any) -> dict[str, Any]:
    """A FilterCondition."""
    return {"Key": key, "Value": value}


def test_search_summaries_carry_the_enrichment_summary(pc, book):
    summaries = pc.search_customer_accounts(Catalog="AWS")["CustomerAccountSummaries"]
    assert len(summaries) == 5
    any_summary = next(s for s in summaries if s["Id"] == book["any"])
    assert any_summary["CustomerAccount"] == {"CompanyName": "AnyCompany Holdings"}
    assert any_summary["PartnerAccountIdentifier"] == "crm-any"
    assert any_summary["AwsEnrichment"] == {
        "Customer": {
            "Industry": "Software and Internet",
            "AccountPlanningQualification": "Qualified",
            "EligiblePrograms": ["MAP", "ISV Accelerate"],
            "Geo": "AMER",
            "Country": "US",
            "Segment": "Enterprise",
        },
        "Insights": {
            "MarketplaceEngagementScore": "High",
            "SolutionCategory": "Analytics",
            "SolutionScore": "High",
        },
    }
    assert "AwsEnrichment" not in next(s for s in summaries if s["Id"] == book["none"])


def test_search_filters(pc, book):
    enriched = search_ids(pc, Filter={"EqualsTo": cond("ENRICHMENT_STATUS", StringValue="ENRICHED")})
    assert sorted(enriched) == sorted([book["any"], book["example"], book["octank"], book["org"]])
    us = search_ids(pc, Filter={"ContainsAny": cond("COUNTRY", StringListValue=["US", "AU"])})
    assert sorted(us) == sorted([book["any"], book["example"], book["org"]])
    both = search_ids(
        pc, Filter={"ContainsAll": cond("PROGRAM_ELIGIBILITY", StringListValue=["MAP", "ISV Accelerate"])}
    )
    assert both == [book["any"]]
    # String comparisons ignore case.
    assert search_ids(pc, Filter={"EqualsTo": cond("COMPANY_NAME", StringValue="OCTANK")}) == [book["octank"]]
    not_us = search_ids(pc, Filter={"NotFilter": {"EqualsTo": cond("GEO", StringValue="AMER")}})
    assert sorted(not_us) == sorted([book["octank"], book["org"], book["none"]])
    combined = search_ids(
        pc,
        Filter={
            "AndAllFilters": [
                {
                    "OrAllFilters": [
                        {"EqualsTo": cond("SEGMENT", StringValue="Enterprise")},
                        {"EqualsTo": cond("MARKETPLACE_ENGAGEMENT_SCORE", StringValue="Low")},
                    ]
                },
                {"NotFilter": {"EqualsTo": cond("AWS_INDUSTRY", StringValue="Healthcare")}},
            ]
        },
    )
    assert sorted(combined) == sorted([book["any"], book["org"]])


def test_search_date_range_filters(pc, ctl, book):
    later = create(pc, Account={"CompanyName": "Later Inc", "Domain": "later.example"})
    created = get(pc, later["Id"])["CreatedDate"]
    after = search_ids(pc, Filter={"GreaterThanOrEquals": cond("CREATED_DATE", DateValue=created)})
    assert after == [later["Id"]]
    strictly = search_ids(pc, Filter={"GreaterThan": cond("CREATED_DATE", DateValue=created)})
    assert strictly == []
    before = search_ids(pc, Filter={"LessThan": cond("CREATED_DATE", DateValue=created)})
    assert len(before) == 5
    assert later["Id"] not in before


@pytest.mark.parametrize(
    "bad_filter",
    [
        {},  # no member
        {
            "EqualsTo": cond("GEO", StringValue="AMER"),
            "NotFilter": {"EqualsTo": cond("GEO", StringValue="AMER")},
        },  # two members
        {"GreaterThan": cond("COMPANY_NAME", DateValue=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))},
        {"EqualsTo": cond("CREATED_DATE", StringValue="2024-01-01")},
        {"EqualsTo": cond("GEO", StringListValue=["AMER"])},
        {"ContainsAll": cond("GEO", StringListValue=["AMER"])},
        {"EqualsTo": cond("GEO", LongValue=3)},
    ],
)
def test_search_rejects_filters_it_cannot_run(pc, bad_filter):
    with pytest.raises(ClientError) as err:
        pc.search_customer_accounts(Catalog="AWS", Filter=bad_filter)
    assert error_code(err) == "ValidationException"
    with pytest.raises(ClientError) as err:
        pc.get_customer_account_statistics(Catalog="AWS", Filter=bad_filter)
    assert error_code(err) == "ValidationException"


def test_search_sorts(pc, book):
    by_name = search_ids(pc, Sort={"SortBy": "COMPANY_NAME", "SortOrder": "ASCENDING"})
    assert by_name == [book["any"], book["org"], book["example"], book["octank"], book["none"]]
    by_score = search_ids(pc, Sort={"SortBy": "MARKETPLACE_ENGAGEMENT_SCORE", "SortOrder": "DESCENDING"})
    # High, Medium, then the two Lows (by id), and the unmatched account (no score) last.
    assert by_score[:2] == [book["any"], book["example"]]
    assert sorted(by_score[2:4]) == sorted([book["octank"], book["org"]])
    assert by_score[4] == book["none"]
    default = pc.search_customer_accounts(Catalog="AWS")["CustomerAccountSummaries"]
    stamps = [s["LastModifiedDate"] for s in default]
    assert stamps == sorted(stamps, reverse=True)


def test_search_pages_with_next_token(pc, book):
    sort = {"SortBy": "CREATED_DATE", "SortOrder": "ASCENDING"}
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"Sort": sort, "MaxResults": 2}
        if token:
            kwargs["NextToken"] = token
        out = pc.search_customer_accounts(Catalog="AWS", **kwargs)
        assert len(out["CustomerAccountSummaries"]) <= 2
        seen += [s["Id"] for s in out["CustomerAccountSummaries"]]
        pages += 1
        token = out.get("NextToken")
        if not token:
            break
    assert pages == 3
    assert seen == [book[k] for k in ("any", "example", "octank", "org", "none")]
    with pytest.raises(ClientError) as err:
        pc.search_customer_accounts(Catalog="AWS", NextToken="not-a-token")
    assert error_code(err) == "ValidationException"
    first = pc.search_customer_accounts(Catalog="AWS", MaxResults=2)
    with pytest.raises(ClientError) as err:
        # A token belongs to its query.
        pc.search_customer_accounts(Catalog="AWS", Sort=sort, NextToken=first["NextToken"])
    assert error_code(err) == "ValidationException"


# ----------------------------------------------------------------------------------------- statistics
def test_statistics_count_and_group(pc, book):
    stats = pc.get_customer_account_statistics(
        Catalog="AWS",
        Aggregations=[
            {"GroupBy": ["ENRICHMENT_STATUS"]},
            {"GroupBy": ["PROGRAM_ELIGIBILITY"]},
            {"GroupBy": ["GEO"]},
        ],
    )
    assert stats["TotalCount"] == 5
    status, programs, geo = stats["Aggregations"]
    assert status == {
        "GroupBy": ["ENRICHMENT_STATUS"],
        "Buckets": [{"Values": ["ENRICHED"], "Count": 4}, {"Values": ["NO_MATCH_FOUND"], "Count": 1}],
        "OtherCount": 0,
    }
    assert programs["Buckets"] == [
        {"Values": ["MAP"], "Count": 2},
        {"Values": ["ISV Accelerate"], "Count": 1},
        {"Values": ["POC Funding"], "Count": 1},
    ]
    # Without IncludeMissing, accounts without a value are in no bucket.
    assert geo["Buckets"] == [
        {"Values": ["AMER"], "Count": 2},
        {"Values": ["APJ"], "Count": 1},
        {"Values": ["EMEA"], "Count": 1},
    ]


def test_statistics_include_missing_and_filter(pc, book):
    stats = pc.get_customer_account_statistics(
        Catalog="AWS",
        Filter={"NotFilter": {"EqualsTo": cond("COUNTRY", StringValue="DE")}},
        Aggregations=[{"GroupBy": ["AWS_INDUSTRY"]}],
        IncludeMissing=True,
    )
    assert stats["TotalCount"] == 4
    assert stats["Aggregations"][0]["Buckets"] == [
        {"Values": ["Financial Services"], "Count": 1},
        {"Values": ["Non-Profit Organization"], "Count": 1},
        {"Values": ["Software and Internet"], "Count": 1},
        {"Values": [""], "Count": 1},
    ]
    # Catalogs are separate: the Sandbox account of the book counts only there.
    assert pc.get_customer_account_statistics(Catalog="Sandbox")["TotalCount"] == 1


def test_statistics_follow_pending_then_finished_matches(pc, ctl):
    create(pc)
    create(pc, Account={"CompanyName": "Nobody", "Domain": "nobody.example"})
    group = [{"GroupBy": ["ENRICHMENT_STATUS"]}]
    pending = pc.get_customer_account_statistics(Catalog="AWS", Aggregations=group)["Aggregations"][0]
    assert pending["Buckets"] == [{"Values": ["PENDING"], "Count": 2}]
    finish_matching(ctl)
    done = pc.get_customer_account_statistics(Catalog="AWS", Aggregations=group)["Aggregations"][0]
    assert done["Buckets"] == [
        {"Values": ["ENRICHED"], "Count": 1},
        {"Values": ["NO_MATCH_FOUND"], "Count": 1},
    ]


# ---------------------------------------------------------------------------------------- persistence
def test_accounts_pending_matches_and_directory_survive_restart(tmp_path):
    from tests.emulators.partner_central.conftest import make_client

    state = str(tmp_path / "pc.json")
    with PartnerCentralEmulator(state_file=state) as first:
        b = first.backend
        b.add_directory_entry({"domain": "persisted.example", "industry": "Travel"})
        created = make_client(first.url).create_customer_account(
            Catalog="AWS", Account={"CompanyName": "Persisted", "Domain": "persisted.example"}
        )
    with PartnerCentralEmulator(state_file=state) as second:
        client = make_client(second.url)
        assert (
            client.get_customer_account(Catalog="AWS", Identifier=created["Id"])["EnrichmentStatus"]
            == "PENDING"
        )
        with second.backend.lock:
            second.backend.clock_offset_ms += MATCH_SECONDS * 1000
        got = client.get_customer_account(Catalog="AWS", Identifier=created["Id"])
        assert got["EnrichmentStatus"] == "ENRICHED"
        assert got["AwsEnrichment"]["Customer"] == {"Industry": "Travel"}


def test_import_id_filter_finds_the_accounts_a_bulk_job_imported(emu, pc):
    # Bulk jobs create accounts through the backend with their job id (bulk_jobs.py); one is imitated here.
    imported = emu.backend.create_customer_account(
        {"Catalog": "AWS", "Account": {"CompanyName": "Imported"}}, import_id="bulkjob-0123456789abc"
    )
    create(pc)
    found = search_ids(pc, Filter={"EqualsTo": cond("IMPORT_ID", StringValue="bulkjob-0123456789abc")})
    assert found == [imported["Id"]]
