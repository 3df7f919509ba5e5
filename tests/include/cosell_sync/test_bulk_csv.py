"""The bulk job CSV template: round trips, header rules, model checks and error messages without values."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from cosell_sync import bulk_csv
from cosell_sync.bulk_csv import (
    CUSTOMER_ACCOUNT,
    OPPORTUNITY,
    BulkFileError,
    BulkReportRow,
    BulkRow,
    read_csv,
    read_report,
    write_csv,
    write_report,
)


def full_request() -> dict[str, Any]:
    """A realistic, fully populated CreateOpportunity request without Catalog and ClientToken."""
    return {
        "PrimaryNeedsFromAws": ["Co-Sell - Technical Consultation", "Co-Sell - Pricing Assistance"],
        "NationalSecurity": "No",
        "PartnerOpportunityIdentifier": "HS-98765",
        "Customer": {
            "Account": {
                "Industry": "Software and Internet",
                "CompanyName": 'Acme "Analytics", Inc.',
                "WebsiteUrl": "https://www.acme.example",
                "AwsAccountId": "111122223333",
                "Address": {
                    "City": "Zürich",
                    "PostalCode": "8001",
                    "StateOrRegion": "Zurich",
                    "CountryCode": "CH",
                    "StreetAddress": "Bahnhofstrasse 1\nFloor 3",
                },
                "Duns": "123456789",
            },
            "Contacts": [
                {
                    "Email": "jane.doe@acme.example",
                    "FirstName": "Jane",
                    "LastName": "Doe",
                    "BusinessTitle": "CTO",
                    "Phone": "+41441234567",
                },
                {"Email": "max@acme.example", "FirstName": "Max", "LastName": "Muster"},
            ],
        },
        "Project": {
            "DeliveryModels": ["SaaS or PaaS", "Professional Services"],
            "ExpectedCustomerSpend": [
                {"Amount": "5000", "CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"},
                {
                    "Amount": "1200.50",
                    "CurrencyCode": "EUR",
                    "Frequency": "Monthly",
                    "TargetCompany": "Acme",
                    "EstimationUrl": "https://calculator.aws/#/estimate?id=" + "ab" * 16,
                },
            ],
            "Title": "Data lake modernization",
            "ApnPrograms": ["Migration Acceleration Program (MAP)"],
            "CustomerBusinessProblem": "Reporting takes days because data sits in silos, across 3 systems.",
            "CustomerUseCase": "Business Intelligence & Analytics",
            "SalesActivities": ["Initialized discussions with customer", "Conducted POC / Demo"],
            "CompetitorName": "Other",
            "OtherCompetitorNames": "In-house tooling",
            "AdditionalComments": "Budget approved for Q3.",
        },
        "OpportunityType": "Net New Business",
        "Marketing": {
            "CampaignName": "Spring data summit",
            "Source": "Marketing Activity",
            "UseCases": ["AI/ML", "Analytics"],
            "Channels": ["Email", "Webinar"],
            "AwsFundingUsed": "No",
        },
        "SoftwareRevenue": {
            "DeliveryModel": "Subscription",
            "Value": {"Amount": "24000", "CurrencyCode": "USD"},
            "EffectiveDate": "2026-01-01",
            "ExpirationDate": "2026-12-31",
        },
        "LifeCycle": {
            "Stage": "Prospect",
            "TargetCloseDate": "2026-09-30",
            "NextSteps": "Kick-off call, then POC",
            "NextStepsHistory": [{"Value": "Intro call", "Time": "2025-05-01T10:00:00.000Z"}],
        },
        "Origin": "Partner Referral",
        "OpportunityTeam": [
            {
                "Email": "owner@partner.example",
                "FirstName": "Pat",
                "LastName": "Owner",
                "BusinessTitle": "PartnerAccountManager",
                "Phone": "+12065550100",
            }
        ],
        "Tags": [{"Key": "source", "Value": "hubspot"}],
    }


def header(data: bytes) -> list[str]:
    """The header row of a CSV file."""
    return data.decode().split("\r\n", 1)[0].split(",")


# ------------------------------------------------------------------------------------------ round trips
def test_full_create_request_round_trips():
    """Every field of a realistic CreateOpportunity request survives write -> read with its types."""
    request = full_request()
    data = write_csv(OPPORTUNITY, [("hs-1", request), ("hs-2", {"Project": {"Title": "Small one"}})])
    operation, rows = read_csv(OPPORTUNITY, data)
    assert operation == "BULK_CREATE"
    assert rows[0] == BulkRow("hs-1", None, None, request)
    assert rows[1] == BulkRow("hs-2", None, None, {"Project": {"Title": "Small one"}})


def test_header_is_request_id_then_the_union_of_paths_in_model_order():
    """RequestId first; paths in the model's member order, list items by index; no Catalog/ClientToken."""
    request = {"Catalog": "AWS", "ClientToken": "t", **full_request()}
    columns = header(write_csv(OPPORTUNITY, [("a", {"LifeCycle": {"Stage": "Prospect"}}), ("b", request)]))
    assert columns[0] == "RequestId"
    assert "Catalog" not in columns
    assert "ClientToken" not in columns
    assert "Identifier" not in columns
    expected_order = [
        "PrimaryNeedsFromAws[0]",
        "PrimaryNeedsFromAws[1]",
        "Customer.Account.CompanyName",
        "Customer.Contacts[0].Email",
        "Customer.Contacts[0].Phone",
        "Customer.Contacts[1].Email",
        "Project.ExpectedCustomerSpend[0].Amount",
        "Project.ExpectedCustomerSpend[1].EstimationUrl",
        "Project.Title",
        "LifeCycle.Stage",
        "LifeCycle.NextStepsHistory[0].Time",
        "Tags[0].Key",
    ]
    positions = [columns.index(c) for c in expected_order]
    assert positions == sorted(positions)
    assert len(columns) == len(set(columns))


def test_empty_cells_are_absent_and_list_items_close_up():
    """An empty cell is an absent field; an all-empty list item is dropped and later ones move up."""
    data = (
        b"RequestId,Customer.Contacts[0].Email,Customer.Contacts[1].Email,Project.Title\r\n"
        b"r1,,b@x.example,\r\n"
        b"r2,a@x.example,,Title\r\n"
    )
    _, rows = read_csv(OPPORTUNITY, data)
    assert rows[0].request == {"Customer": {"Contacts": [{"Email": "b@x.example"}]}}
    assert rows[1].request == {
        "Customer": {"Contacts": [{"Email": "a@x.example"}]},
        "Project": {"Title": "Title"},
    }


def test_update_file_has_identifier_and_last_modified_date_columns():
    """Identifier and LastModifiedDate follow RequestId; their presence makes the file BULK_UPDATE."""
    stamp = dt.datetime(2025, 6, 1, 12, 30, 5, 123456, tzinfo=dt.UTC)
    body = {k: v for k, v in full_request().items() if k not in ("Origin", "OpportunityTeam", "Tags")}
    data = write_csv(
        OPPORTUNITY, [("u1", {**body, "Identifier": "O1234567", "LastModifiedDate": stamp})], update=True
    )
    assert header(data)[:3] == ["RequestId", "Identifier", "LastModifiedDate"]
    operation, (row,) = read_csv(OPPORTUNITY, data)
    assert operation == "BULK_UPDATE"
    assert row.identifier == "O1234567"
    assert row.last_modified_date == "2025-06-01T12:30:05.123Z"
    assert row.request == body


def test_update_file_rejects_create_only_fields():
    """The update template follows UpdateOpportunity's input: Tags and OpportunityTeam are not in it."""
    with pytest.raises(ValueError, match=r"u1: field Tags is not in the bulk template"):
        write_csv(
            OPPORTUNITY,
            [
                (
                    "u1",
                    {"Identifier": "O1", "LastModifiedDate": "2025-01-01T00:00:00Z", "Tags": [{"Key": "k"}]},
                )
            ],
            update=True,
        )


def test_customer_account_templates_round_trip():
    """Customer accounts: the CreateCustomerAccount and UpdateCustomerAccount input shapes."""
    create = {
        "Account": {
            "CompanyName": "Beta Ltd",
            "WebsiteUrl": "https://beta.example",
            "Duns": "987654321",
            "Address": {"City": "London", "CountryCode": "GB"},
            "Industry": "Retail",
            "Domain": "beta.example",
            "ParentCompanyName": "Beta Holdings",
        },
        "PartnerAccountIdentifier": "crm-42",
        "Tags": [{"Key": "team", "Value": "emea"}],
    }
    assert read_csv(CUSTOMER_ACCOUNT, write_csv(CUSTOMER_ACCOUNT, [("c1", create)]))[1][0].request == create
    update = {k: v for k, v in create.items() if k != "Tags"}
    data = write_csv(
        CUSTOMER_ACCOUNT,
        [
            (
                "c1",
                {
                    **update,
                    "Identifier": "cust-acc-abcdefghijklm",
                    "LastModifiedDate": "2025-01-02T03:04:05Z",
                },
            )
        ],
        update=True,
    )
    operation, (row,) = read_csv(CUSTOMER_ACCOUNT, data)
    assert operation == "BULK_UPDATE"
    assert row.identifier == "cust-acc-abcdefghijklm"
    assert row.request == update


def test_utf8_bom_and_quoting_are_handled():
    """A byte-order mark (Excel) is accepted; commas, quotes and newlines in values survive."""
    request = {"Project": {"Title": 'Phase "2", east\r\nwing', "CustomerBusinessProblem": "Ünïcode ✓"}}
    data = b"\xef\xbb\xbf" + write_csv(OPPORTUNITY, [("r,1", request)])
    _, (row,) = read_csv(OPPORTUNITY, data)
    assert row.request_id == "r,1"
    assert row.request == request


def test_non_string_model_types_are_converted(monkeypatch):
    """Booleans, integers and doubles are written as JSON writes them and read back typed."""
    # The opportunity and account templates only hold strings; borrow operations with other leaf types.
    monkeypatch.setitem(bulk_csv._OPERATIONS, "stats", ("GetCustomerAccountStatistics", "UpdateOpportunity"))
    monkeypatch.setitem(bulk_csv._OPERATIONS, "search", ("SearchOpportunities", "UpdateOpportunity"))
    stats = {"IncludeMissing": True}
    data = write_csv("stats", [("s", stats)])
    assert data.decode().splitlines()[1] == "s,true"
    assert read_csv("stats", data)[1][0].request == stats
    assert read_csv("stats", b"RequestId,IncludeMissing\r\ns,FALSE\r\n")[1][0].request == {
        "IncludeMissing": False
    }
    search = {"MaxResults": 25, "Filter": {"EqualsTo": {"Value": {"DoubleValue": 1234.5}}}}
    data = write_csv("search", [("d", search)])
    assert "25" in data.decode().splitlines()[1].split(",")
    assert read_csv("search", data)[1][0].request == search
    bad = b"RequestId,IncludeMissing\r\nx,maybe-secret\r\n"
    with pytest.raises(BulkFileError) as err:
        read_csv("stats", bad)
    assert (err.value.row, err.value.column) == (1, "IncludeMissing")
    assert "maybe-secret" not in str(err.value)
    with pytest.raises(ValueError, match="IncludeMissing has the wrong type"):
        write_csv("stats", [("s", {"IncludeMissing": "yes"})])


# ----------------------------------------------------------------------------------------- write errors
def test_write_names_request_and_path_never_the_value():
    """An unknown path or a wrongly typed value is a ValueError naming the request id and the path."""
    with pytest.raises(ValueError, match=r"hs-7: field Customer\.Account\.Shoe") as err:
        write_csv(OPPORTUNITY, [("hs-7", {"Customer": {"Account": {"Shoe": "secret-size-44"}}})])
    assert "secret-size-44" not in str(err.value)
    with pytest.raises(ValueError, match=r"hs-8: field Project\.ExpectedCustomerSpend\[0\]\.Amount") as err:
        write_csv(OPPORTUNITY, [("hs-8", {"Project": {"ExpectedCustomerSpend": [{"Amount": 987654}]}})])
    assert "987654" not in str(err.value)
    with pytest.raises(ValueError, match="hs-9: field Project must be an object"):
        write_csv(OPPORTUNITY, [("hs-9", {"Project": ["x"]})])


def test_write_rejects_duplicate_or_empty_ids_and_update_fields_in_creates():
    """Request ids are unique and non-empty; Identifier belongs to update files only."""
    with pytest.raises(ValueError, match="a: the request id is used twice"):
        write_csv(OPPORTUNITY, [("a", {}), ("a", {})])
    with pytest.raises(ValueError, match="non-empty request id"):
        write_csv(OPPORTUNITY, [("", {})])
    with pytest.raises(ValueError, match="Identifier belongs in an update file"):
        write_csv(OPPORTUNITY, [("a", {"Identifier": "O1"})])
    with pytest.raises(ValueError, match="unknown bulk kind"):
        write_csv("deal", [("a", {})])


def test_write_refuses_files_over_the_limit(monkeypatch):
    """The caller learns to split before uploading a file the service would refuse."""
    assert bulk_csv.MAX_FILE_BYTES == 100 * 1024 * 1024
    monkeypatch.setattr(bulk_csv, "MAX_FILE_BYTES", 200)
    rows = [(f"r{i}", {"Project": {"Title": "A fairly long title"}}) for i in range(20)]
    with pytest.raises(ValueError, match="byte limit"):
        write_csv(OPPORTUNITY, rows)
    with pytest.raises(BulkFileError, match="larger than"):
        read_csv(OPPORTUNITY, b"RequestId\r\n" + b"x\r\n" * 200)


# ------------------------------------------------------------------------------------------ read errors
@pytest.mark.parametrize(
    ("data", "row", "column"),
    [
        (b"RequestId,Project.Colour\r\nr1,red\r\n", 0, "Project.Colour"),
        (b"RequestId,Catalog\r\nr1,AWS\r\n", 0, "Catalog"),
        (b"RequestId,ClientToken\r\nr1,tok\r\n", 0, "ClientToken"),
        (b"RequestId,Customer\r\nr1,x\r\n", 0, "Customer"),
        (b"RequestId,PrimaryNeedsFromAws\r\nr1,x\r\n", 0, "PrimaryNeedsFromAws"),
        (
            b"RequestId,Project.ExpectedCustomerSpend[10].Amount\r\nr1,1\r\n",
            0,
            "Project.ExpectedCustomerSpend[10].Amount",
        ),
        (b"RequestId,Tags[0].Key\r\nr1,k\r\n", None, None),  # valid in a create file
        (b"RequestId,Identifier,Tags[0].Key\r\nr1,O1,k\r\n", 0, "LastModifiedDate"),
        (b"RequestId,LastModifiedDate\r\nr1,2025-01-01T00:00:00Z\r\n", 0, "Identifier"),
        (b"Project.Title\r\nsecret title\r\n", 0, "RequestId"),
        (b"RequestId,Project.Title,Project.Title\r\nr1,a,b\r\n", 0, "Project.Title"),
        (b"RequestId,Project.Title\r\nr1,a\r\nr1,b\r\n", 2, "RequestId"),
        (b"RequestId,Project.Title\r\n,a\r\n", 1, "RequestId"),
        (b"RequestId,Project.Title\r\nr1,a,secret\r\n", 1, None),
        (b"RequestId,Identifier,LastModifiedDate\r\nr1,O1,yesterday-secret\r\n", 1, "LastModifiedDate"),
        (b"", 0, None),
    ],
)
def test_malformed_files_raise_bulk_file_error(data, row, column):
    """Unknown, duplicate or missing columns and bad records: BulkFileError(row, column), no values."""
    if row is None and column is None:
        assert read_csv(OPPORTUNITY, data)[1][0].request == {"Tags": [{"Key": "k"}]}
        return
    with pytest.raises(BulkFileError) as err:
        read_csv(OPPORTUNITY, data)
    assert (err.value.row, err.value.column) == (row, column)
    assert "secret" not in str(err.value)
    assert "red" not in err.value.message


def test_files_that_are_not_plain_text_csv():
    """Bytes that are not UTF-8, NUL bytes and broken quoting are file-level errors."""
    for data in (b"\xff\xfe\x00R\x00e", b"RequestId\r\nr\x001\r\n"):
        with pytest.raises(BulkFileError) as err:
            read_csv(OPPORTUNITY, data)
        assert err.value.row is None
    with pytest.raises(BulkFileError, match="not valid CSV"):
        read_csv(OPPORTUNITY, b'RequestId,Project.Title\r\nr1,"unterminated\r\n')


def test_blank_lines_are_skipped():
    """Trailing or interleaved blank lines are not records."""
    _, rows = read_csv(OPPORTUNITY, b"RequestId,Project.Title\r\n\r\nr1,a\r\n\r\n")
    assert [r.request_id for r in rows] == ["r1"]


# ---------------------------------------------------------------------------------------------- reports
def test_report_round_trip_keeps_records_and_outcomes():
    """A report: the template's columns plus Status, ResourceIdentifier, ErrorCode and ErrorMessage."""
    request = full_request()
    entries = [
        BulkReportRow(
            BulkRow("a", None, None, request), "FAILED", None, "ValidationException", "Bad, very bad"
        ),
        BulkReportRow(
            BulkRow("b", None, None, {"Project": {"Title": "T"}}),
            "FAILED",
            "O100",
            "InternalServerException",
            "x",
        ),
        BulkReportRow(BulkRow("c", None, None, {"Project": {"Title": "U"}}), "SUCCEEDED", "O101"),
    ]
    data = write_report(OPPORTUNITY, entries)
    assert header(data)[-4:] == ["Status", "ResourceIdentifier", "ErrorCode", "ErrorMessage"]
    operation, back = read_report(OPPORTUNITY, data)
    assert operation == "BULK_CREATE"
    assert back == entries
    # A report is not a bulk file: its extra columns are not part of the template.
    with pytest.raises(BulkFileError):
        read_csv(OPPORTUNITY, data)


def test_update_report_keeps_identifier_and_last_modified_date():
    """A report of an update job carries Identifier and LastModifiedDate like the file did."""
    row = BulkRow("u", "O1", "2025-01-01T00:00:00.000Z", {"Project": {"Title": "T"}})
    entry = BulkReportRow(row, "FAILED", None, "ConflictException", "stale")
    _, (back,) = read_report(OPPORTUNITY, write_report(OPPORTUNITY, [entry], update=True))
    assert back == entry
    assert copy.deepcopy(back.row) == row
