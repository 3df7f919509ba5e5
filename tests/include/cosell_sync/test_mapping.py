from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from cosell_sync.config import SyncConfig, load_config
from cosell_sync.mapping import (
    changes_to_hubspot,
    client_token,
    get_path,
    hubspot_to_frame,
    merge_into_opportunity,
    new_deal_properties,
    new_opportunity_request,
    opportunities_to_frame,
    set_path,
)
from cosell_sync.pc_model import pc_shape
from cosell_sync.transforms import TransformError


@pytest.fixture(scope="module")
def cfg() -> SyncConfig:
    return load_config()


def get_opportunity_response() -> dict[str, Any]:
    """A GetOpportunity response as boto3 returns it (timestamps parsed to datetimes)."""
    return {
        "Catalog": "AWS",
        "Id": "O1234567",
        "Arn": "arn:aws:partnercentral:us-east-1::catalog/AWS/opportunity/O1234567",
        "CreatedDate": datetime(2025, 1, 5, 9, 0, tzinfo=UTC),
        "LastModifiedDate": datetime(2025, 2, 1, 12, 30, tzinfo=UTC),
        "PartnerOpportunityIdentifier": "9001",
        "OpportunityType": "Net New Business",
        "NationalSecurity": "No",
        "PrimaryNeedsFromAws": ["Co-Sell - Technical Consultation", "Co-Sell - Deal Support"],
        "Origin": "Partner Referral",
        "Customer": {
            "Account": {
                "CompanyName": "Acme Corp",
                "Industry": "Retail",
                "WebsiteUrl": "https://acme.example.com",
                "Duns": "123456789",
                "AwsAccountId": "111122223333",
                "Address": {
                    "StreetAddress": "1 Main St",
                    "City": "Seattle",
                    "StateOrRegion": "WA",
                    "PostalCode": "98101",
                    "CountryCode": "US",
                },
            },
            "Contacts": [
                {
                    "Email": "jane@acme.example.com",
                    "FirstName": "Jane",
                    "LastName": "Doe",
                    "Phone": "+14155550100",
                    "BusinessTitle": "CTO",
                },
                {"Email": "bob@acme.example.com", "FirstName": "Bob"},
            ],
        },
        "Project": {
            "Title": "Data platform migration",
            "CustomerBusinessProblem": "The on-premises warehouse cannot keep up with growth.",
            "CustomerUseCase": "Migration / Database Migration",
            "DeliveryModels": ["Professional Services"],
            "SalesActivities": ["Conducted POC / Demo"],
            "CompetitorName": "Microsoft Azure",
            "ApnPrograms": ["Migration Acceleration Program"],
            "ExpectedCustomerSpend": [
                {
                    "Amount": "25000.00",
                    "CurrencyCode": "USD",
                    "Frequency": "Monthly",
                    "TargetCompany": "AWS",
                    "EstimationUrl": "https://calculator.aws/#/estimate?id=" + "a" * 40,
                },
            ],
            "ExpectedContractDuration": {"Term": "Months", "Value": "12"},
            "AdditionalComments": "Strategic account",
        },
        "Marketing": {"Source": "None", "AwsFundingUsed": "No"},
        "SoftwareRevenue": {
            "DeliveryModel": "Subscription",
            "Value": {"Amount": "1000", "CurrencyCode": "USD"},
        },
        "LifeCycle": {
            "Stage": "Technical Validation",
            "TargetCloseDate": "2025-06-30",
            "NextSteps": "Architecture review",
            "ReviewStatus": "Approved",
            "NextStepsHistory": [{"Value": "Kickoff", "Time": datetime(2025, 1, 6, tzinfo=UTC)}],
        },
        "OpportunityTeam": [{"Email": "rep@partner.example.com", "FirstName": "Rep"}],
        "RelatedEntityIdentifiers": {"Solutions": ["S-0000001"], "AwsProducts": ["AmazonRedshift"]},
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }


# --- paths -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("Project.Title", "Data platform migration", id="nested"),
        pytest.param("Customer.Contacts[1].Email", "bob@acme.example.com", id="list-index"),
        pytest.param("Customer.Contacts[5].Email", None, id="index-out-of-range"),
        pytest.param("Project.Missing.Deeper", None, id="missing-key"),
        pytest.param("Project.ExpectedCustomerSpend[0].Amount", "25000.00", id="spend-amount"),
    ],
)
def test_get_path(path, expected):
    assert get_path(get_opportunity_response(), path) == expected


@pytest.mark.parametrize(
    ("start", "path", "value", "expected"),
    [
        pytest.param({}, "A.B.C", 1, {"A": {"B": {"C": 1}}}, id="creates-dicts"),
        pytest.param({}, "A.L[1].X", "v", {"A": {"L": [{}, {"X": "v"}]}}, id="creates-and-pads-lists"),
        pytest.param(
            {"A": {"L": [{"X": 1, "Y": 2}]}},
            "A.L[0].X",
            3,
            {"A": {"L": [{"X": 3, "Y": 2}]}},
            id="keeps-siblings",
        ),
    ],
)
def test_set_path(start, path, value, expected):
    set_path(start, path, value)
    assert start == expected


# --- reading ------------------------------------------------------------------------------------------
def test_opportunities_to_frame_gives_canonical_columns(cfg):
    frame = opportunities_to_frame([get_opportunity_response()], cfg)
    row = frame.loc["O1234567"]
    assert frame.index.name == "opportunity_id"
    assert row["project_title"] == "Data platform migration"
    assert row["expected_spend_amount"] == "25000"
    assert row["stage"] == "Technical Validation"
    assert row["company_country"] == "US"
    assert row["contact_job_title"] == "CTO"
    assert row["review_status"] == "Approved"
    assert row["review_comments"] is None
    assert row["_review_status"] == "Approved"
    assert row["_partner_opportunity_identifier"] == "9001"
    assert row["_last_modified"] == pd.Timestamp("2025-02-01T12:30:00Z")
    assert str(frame["_last_modified"].dtype).endswith("UTC]")
    assert all(frame[name].dtype == object for name in cfg.field_names())
    assert row["_error"] is None


def test_a_bad_value_is_recorded_per_record_not_raised(cfg):
    bad = get_opportunity_response()
    bad["Id"] = "O2"
    bad["Customer"]["Account"]["Industry"] = "Other"  # no HubSpot industry option
    bad["LifeCycle"]["TargetCloseDate"] = "2025-02-30"
    frame = opportunities_to_frame([get_opportunity_response(), bad], cfg)
    assert frame.loc["O1234567", "_error"] is None
    # Field and rule, never the value (the error reaches logs and the deal's aws_sync_error).
    assert "company_industry: is not a Partner Central value" in frame.loc["O2", "_error"]
    assert "target_close_date: is not a valid calendar date" in frame.loc["O2", "_error"]
    assert "Other" not in frame.loc["O2", "_error"]
    assert "2025-02-30" not in frame.loc["O2", "_error"]
    assert set(frame.loc["O2", "_skip_fields"].split(",")) == {"company_industry", "target_close_date"}
    assert frame.loc["O2", "project_title"] == "Data platform migration"


def test_duplicate_reads_keep_the_last(cfg):
    first = get_opportunity_response()
    second = get_opportunity_response()
    second["Project"]["Title"] = "Renamed"
    frame = opportunities_to_frame([first, second], cfg)
    assert len(frame) == 1
    assert frame.loc["O1234567", "project_title"] == "Renamed"


def test_empty_input_gives_an_empty_frame_with_all_columns(cfg):
    frame = opportunities_to_frame([], cfg)
    assert frame.empty
    assert set(cfg.field_names()) <= set(frame.columns)


def _deal(deal_id: str, oid: str | None, **props: str) -> dict[str, Any]:
    properties = {
        "dealname": "Data platform migration",
        "dealstage": "presentationscheduled",
        "hs_lastmodifieddate": "2025-02-01T10:00:00.000Z",
        **props,
    }
    if oid is not None:
        properties["aws_opportunity_id"] = oid
    return {"id": deal_id, "properties": properties, "updatedAt": "2025-02-01T10:00:00.000Z"}


def test_hubspot_to_frame_joins_company_and_contact(cfg):
    deals = [_deal("11", "O1", amount="1,000.00"), _deal("12", None)]
    companies = {
        "21": {
            "id": "21",
            "properties": {
                "name": "Acme",
                "industry": "INTERNET",
                "hs_lastmodifieddate": "2025-02-03T00:00:00Z",
            },
        }
    }
    contacts = {
        "31": {
            "id": "31",
            "properties": {"email": "Jane@Acme.com", "lastmodifieddate": "2025-01-01T00:00:00Z"},
        }
    }
    frame = hubspot_to_frame(deals, companies, contacts, {"11": "21"}, {"11": "31"}, cfg)
    assert list(frame.index) == ["O1"]  # the unlinked deal is not part of the sync
    row = frame.loc["O1"]
    assert row["_deal_id"] == "11"
    assert row["_company_id"] == "21"
    assert row["_contact_id"] == "31"
    assert row["stage"] == "Technical Validation"
    assert row["expected_spend_amount"] == "1000"
    assert row["company_industry"] == "Software and Internet"
    assert row["contact_email"] == "jane@acme.com"
    # The company was edited last: record-level last-write-wins sees its time.
    assert row["_last_modified"] == pd.Timestamp("2025-02-03T00:00:00Z")


def test_missing_association_marks_fields_unknown_not_cleared(cfg):
    frame = hubspot_to_frame([_deal("11", "O1")], {}, {}, {}, {}, cfg)
    skipped = set(frame.loc["O1", "_skip_fields"].split(","))
    assert {f.name for f in cfg.fields if f.object in ("company", "contact")} == skipped
    assert frame.loc["O1", "_error"] is None


def test_hubspot_bad_value_is_recorded(cfg):
    frame = hubspot_to_frame([_deal("11", "O1", dealstage="mystery")], {}, {}, {}, {}, cfg)
    assert "stage: is not a HubSpot deal stage" in frame.loc["O1", "_error"]
    assert "mystery" not in frame.loc["O1", "_error"]
    assert "stage" in frame.loc["O1", "_skip_fields"].split(",")


# --- writing HubSpot --------------------------------------------------------------------------------------
def test_changes_to_hubspot_groups_by_object_and_clears_with_empty_string(cfg):
    out = changes_to_hubspot(
        {
            "stage": "Committed",
            "target_close_date": None,
            "company_industry": "Retail",
            "contact_phone": "+14155550100",
        },
        cfg,
    )
    assert out == {
        "deal": {"dealstage": "contractsent", "closedate": ""},
        "company": {"industry": "RETAIL"},
        "contact": {"phone": "+14155550100"},
    }


def test_new_deal_properties_link_the_deal(cfg):
    frame = opportunities_to_frame([get_opportunity_response()], cfg)
    values = frame.loc["O1234567", cfg.field_names()].to_dict()
    props = new_deal_properties(values, "O1234567", cfg)
    assert props["deal"]["aws_opportunity_id"] == "O1234567"
    assert props["deal"]["pipeline"] == "default"
    assert props["deal"]["aws_sync_enabled"] == "true"
    assert props["deal"]["dealstage"] == "presentationscheduled"
    assert props["deal"]["aws_review_status"] == "approved"
    assert props["company"]["industry"] == "RETAIL"
    assert props["contact"]["jobtitle"] == "CTO"
    assert "aws_review_comments" not in props["deal"]  # nulls are not written on create


# --- writing Partner Central --------------------------------------------------------------------------------
def _updatable(value: Any, shape: Any) -> Any:
    """Independent oracle: every value the UpdateOpportunity input shape accepts."""
    if shape.type_name == "structure":
        return {k: _updatable(v, shape.members[k]) for k, v in value.items() if k in shape.members}
    if shape.type_name == "list":
        return [_updatable(v, shape.member) for v in value]
    return value


def test_merge_without_changes_keeps_every_updatable_value(cfg):
    current = get_opportunity_response()
    request = merge_into_opportunity(current, {}, cfg)
    expected = _updatable(current, pc_shape("UpdateOpportunity", "input"))
    expected.update(Identifier="O1234567")
    assert request == expected
    for read_only in ("Arn", "CreatedDate", "Id", "OpportunityTeam", "RelatedEntityIdentifiers", "Origin"):
        assert read_only not in request
    assert request["LastModifiedDate"] == current["LastModifiedDate"]  # the optimistic lock


def test_merge_applies_changes_and_nothing_else(cfg):
    current = get_opportunity_response()
    untouched = copy.deepcopy(current)
    request = merge_into_opportunity(
        current,
        {
            "expected_spend_amount": "30000",
            "stage": "Business Validation",
            "company_website": None,
            "contact_phone": "+442079460958",
        },
        cfg,
    )
    assert current == untouched  # the caller's record is not modified
    spend = request["Project"]["ExpectedCustomerSpend"][0]
    assert spend["Amount"] == "30000"
    assert spend["EstimationUrl"].startswith("https://calculator.aws/")
    assert request["LifeCycle"]["Stage"] == "Business Validation"
    assert "WebsiteUrl" not in request["Customer"]["Account"]  # omitted == null for UpdateOpportunity
    assert request["Customer"]["Contacts"][0]["Phone"] == "+442079460958"
    assert request["Customer"]["Contacts"][1] == {"Email": "bob@acme.example.com", "FirstName": "Bob"}
    assert request["Project"]["ApnPrograms"] == ["Migration Acceleration Program"]


def test_merge_fills_required_spend_members_for_a_new_entry(cfg):
    current = get_opportunity_response()
    del current["Project"]["ExpectedCustomerSpend"]
    request = merge_into_opportunity(current, {"expected_spend_amount": "500"}, cfg)
    assert request["Project"]["ExpectedCustomerSpend"] == [
        {"Amount": "500", "CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"}
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"customer_business_problem": "Too short"},
            "customer_business_problem: is 9 characters; Partner Central "
            "Project.CustomerBusinessProblem takes 20 to 2000 characters",
            id="below-pc-min-length",
        ),
        pytest.param({"review_status": "Approved"}, "review_status: direction", id="read-only-direction"),
    ],
)
def test_merge_rejects_values_pc_would_refuse(cfg, changes, message):
    with pytest.raises((TransformError, ValueError), match=message):
        merge_into_opportunity(get_opportunity_response(), changes, cfg)


def test_new_opportunity_request_is_complete_and_idempotent(cfg):
    values = {
        "project_title": "Edge rollout",
        "stage": "Prospect",
        "expected_spend_amount": "1200",
        "company_name": "Acme",
        "company_country": "US",
        "contact_email": "jane@acme.example.com",
        "review_status": "Approved",
        "customer_business_problem": None,
    }
    request = new_opportunity_request(values, "9001", cfg, "AWS")
    assert request == new_opportunity_request(values, "9001", cfg, "AWS")
    assert request["ClientToken"] == client_token("AWS", "9001")
    assert request["PartnerOpportunityIdentifier"] == "9001"
    assert request["Catalog"] == "AWS"
    assert request["Origin"] == "Partner Referral"
    assert request["OpportunityType"] == "Net New Business"
    assert request["NationalSecurity"] == "No"
    assert request["PrimaryNeedsFromAws"] == ["Co-Sell - Architectural Validation"]
    assert request["Project"]["Title"] == "Edge rollout"
    assert request["Project"]["ExpectedCustomerSpend"][0]["CurrencyCode"] == "USD"
    assert request["Customer"]["Contacts"] == [{"Email": "jane@acme.example.com"}]
    assert "ReviewStatus" not in request.get("LifeCycle", {})  # AWS owns the review status
    assert "CustomerBusinessProblem" not in request["Project"]


def test_new_opportunity_request_passes_botocore_validation(cfg):
    from botocore.validate import ParamValidator

    request = new_opportunity_request({"project_title": "X", "expected_spend_amount": "1"}, "77", cfg, "AWS")
    report = ParamValidator().validate(request, pc_shape("CreateOpportunity", "input"))
    assert not report.has_errors(), report.generate_report()


def test_merged_update_passes_botocore_validation(cfg):
    from botocore.validate import ParamValidator

    request = merge_into_opportunity(get_opportunity_response(), {"project_title": "New"}, cfg)
    report = ParamValidator().validate(request, pc_shape("UpdateOpportunity", "input"))
    assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize(
    ("catalog", "deal_id"),
    [
        pytest.param("AWS", "123", id="short"),
        pytest.param("Sandbox", "9" * 400, id="long-id-is-hashed"),
    ],
)
def test_client_token_is_deterministic_and_within_limits(catalog, deal_id):
    token = client_token(catalog, deal_id)
    assert token == client_token(catalog, deal_id)
    assert 1 <= len(token) <= 255
    assert token != client_token(catalog, deal_id + "0")
    assert token != client_token("AWS" if catalog == "Sandbox" else "Sandbox", deal_id)
