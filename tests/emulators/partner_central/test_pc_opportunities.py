"""Opportunity lifecycle and the business rules of UpdateOpportunity, over HTTP with boto3."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError
from pc_helpers import associate_solution, opportunity_payload, update_from

from emulators.partner_central import shapes


def _error(exc: pytest.ExceptionInfo[ClientError]) -> dict:
    return exc.value.response


def _create(pc, **overrides) -> dict:
    created = pc.create_opportunity(**opportunity_payload(**overrides))
    return pc.get_opportunity(Catalog=overrides.get("Catalog", "AWS"), Identifier=created["Id"])


def _submit_and_review(pc, ctl, opp: dict, status: str) -> dict:
    associate_solution(pc, opp["Id"])
    pc.submit_opportunity(Catalog="AWS", Identifier=opp["Id"], InvolvementType="Co-Sell")
    ctl(
        "simulate/review",
        {
            "catalog": "AWS",
            "identifier": opp["Id"],
            "review_status": status,
            "review_comments": "Please clarify the business problem.",
        },
    )
    return pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])


def test_create_starts_pending_submission_and_get_returns_record(pc):
    opp = _create(pc)
    assert opp["Id"].startswith("O")
    assert opp["LifeCycle"]["ReviewStatus"] == "Pending Submission"
    assert opp["Customer"]["Account"]["CompanyName"] == "Acme Analytics Inc."
    assert opp["LastModifiedDate"] == opp["CreatedDate"]
    assert opp["LifeCycle"]["NextStepsHistory"][0]["Value"] == "Kick-off call"


def test_client_token_idempotency(pc):
    body = opportunity_payload(ClientToken="same-token")
    first = pc.create_opportunity(**body)
    again = pc.create_opportunity(**body)
    assert again["Id"] == first["Id"]
    assert len(pc.list_opportunities(Catalog="AWS")["OpportunitySummaries"]) == 1
    with pytest.raises(ClientError) as exc:
        pc.create_opportunity(**{**body, "PartnerOpportunityIdentifier": "HS-other"})
    assert _error(exc)["Error"]["Code"] == "ConflictException"


def test_aws_referral_origin_only_in_sandbox(pc):
    with pytest.raises(ClientError) as exc:
        pc.create_opportunity(**opportunity_payload(Origin="AWS Referral"))
    err = _error(exc)
    assert err["Error"]["Code"] == "ValidationException"
    assert err["Reason"] == "BUSINESS_VALIDATION_FAILED"
    assert err["ErrorList"][0]["FieldName"] == "Origin"
    created = pc.create_opportunity(**opportunity_payload(Catalog="Sandbox", Origin="AWS Referral"))
    assert created["Id"]


def test_catalogs_are_separate_stores(pc):
    created = pc.create_opportunity(**opportunity_payload(Catalog="Sandbox"))
    with pytest.raises(ClientError) as exc:
        pc.get_opportunity(Catalog="AWS", Identifier=created["Id"])
    assert _error(exc)["Error"]["Code"] == "ResourceNotFoundException"
    assert pc.list_opportunities(Catalog="AWS")["OpportunitySummaries"] == []


def test_update_replaces_whole_record_and_moves_last_modified(pc):
    opp = _create(pc)
    request = update_from(
        opp, Project={"Title": "New title", "CustomerBusinessProblem": "A business problem of enough length."}
    )
    request.pop("Marketing", None)
    request.pop("PartnerOpportunityIdentifier")
    result = pc.update_opportunity(**request)
    after = pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])
    assert result["LastModifiedDate"] > opp["LastModifiedDate"]
    assert after["LastModifiedDate"] == result["LastModifiedDate"]
    assert after["Project"] == {
        "Title": "New title",
        "CustomerBusinessProblem": "A business problem of enough length.",
    }
    assert "PartnerOpportunityIdentifier" not in after  # omitted => null
    assert after["LifeCycle"]["ReviewStatus"] == "Pending Submission"  # review fields are AWS-owned


def test_update_with_stale_last_modified_date_conflicts(pc):
    opp = _create(pc)
    pc.update_opportunity(**update_from(opp, NationalSecurity="Yes"))
    with pytest.raises(ClientError) as exc:
        pc.update_opportunity(**update_from(opp, NationalSecurity="No"))
    assert _error(exc)["Error"]["Code"] == "ConflictException"


def test_last_modified_round_trips_at_millisecond_precision(pc):
    opp = _create(pc)
    # The datetime boto3 parsed is sent back as epoch seconds; it must compare equal.
    assert opp["LastModifiedDate"].microsecond % 1000 == 0
    pc.update_opportunity(**update_from(opp))


@pytest.mark.parametrize("status", ["Submitted", "In review"])
def test_no_updates_while_submitted_or_in_review(pc, ctl, status):
    opp = _create(pc)
    associate_solution(pc, opp["Id"])
    pc.submit_opportunity(Catalog="AWS", Identifier=opp["Id"], InvolvementType="Co-Sell")
    if status == "In review":
        ctl("simulate/review", {"catalog": "AWS", "identifier": opp["Id"], "review_status": "In review"})
    current = pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])
    assert current["LifeCycle"]["ReviewStatus"] == status
    with pytest.raises(ClientError) as exc:
        pc.update_opportunity(**update_from(current, NationalSecurity="Yes"))
    err = _error(exc)
    assert err["Reason"] == "BUSINESS_VALIDATION_FAILED"
    assert err["ErrorList"][0]["Code"] == "INVALID_RESOURCE_STATE"


def test_action_required_allows_only_documented_fields(pc, ctl):
    opp = _submit_and_review(pc, ctl, _create(pc), "Action Required")
    assert opp["LifeCycle"]["ReviewComments"] == "Please clarify the business problem."
    with pytest.raises(ClientError) as exc:
        pc.update_opportunity(**update_from(opp, OpportunityType="Expansion"))
    err = _error(exc)
    assert err["ErrorList"] == [
        {
            "FieldName": "OpportunityType",
            "Message": "Field cannot be changed in Action Required",
            "Code": "ACTION_NOT_PERMITTED",
        }
    ]
    project = {
        **opp["Project"],
        "CustomerBusinessProblem": "A much clearer statement of the business problem.",
    }
    account = {**opp["Customer"]["Account"], "WebsiteUrl": "https://acme.example.org"}
    pc.update_opportunity(**update_from(opp, Project=project, Customer={"Account": account}))
    after = pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])
    assert after["Project"]["CustomerBusinessProblem"].startswith("A much clearer")
    # "After updates, the opportunity re-enters the validation phase."
    assert after["LifeCycle"]["ReviewStatus"] == "Submitted"


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("Project.Title", lambda o: {"Project": {**o["Project"], "Title": "Renamed"}}),
        ("PartnerOpportunityIdentifier", lambda o: {"PartnerOpportunityIdentifier": "HS-2"}),
        (
            "Customer.Account.Industry",
            lambda o: {"Customer": {"Account": {**o["Customer"]["Account"], "Industry": "Retail"}}},
        ),
        (
            "Customer.Account.Address.PostalCode",
            lambda o: {
                "Customer": {
                    "Account": {
                        **o["Customer"]["Account"],
                        "Address": {**o["Customer"]["Account"]["Address"], "PostalCode": "98102"},
                    }
                }
            },
        ),
    ],
)
def test_approved_locks_seven_fields(pc, ctl, field, change):
    opp = _submit_and_review(pc, ctl, _create(pc), "Approved")
    with pytest.raises(ClientError) as exc:
        pc.update_opportunity(**update_from(opp, **change(opp)))
    assert _error(exc)["ErrorList"][0]["FieldName"] == field


def test_approved_other_fields_remain_editable(pc, ctl):
    opp = _submit_and_review(pc, ctl, _create(pc), "Approved")
    lifecycle = {**opp["LifeCycle"], "Stage": "Qualified", "NextSteps": "Technical workshop"}
    pc.update_opportunity(**update_from(opp, LifeCycle=lifecycle))
    after = pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])
    assert after["LifeCycle"]["Stage"] == "Qualified"
    assert after["LifeCycle"]["ReviewStatus"] == "Approved"
    assert [h["Value"] for h in after["LifeCycle"]["NextStepsHistory"]] == [
        "Kick-off call",
        "Technical workshop",
    ]


def test_rejected_is_read_only(pc, ctl):
    opp = _submit_and_review(pc, ctl, _create(pc), "Rejected")
    with pytest.raises(ClientError) as exc:
        pc.update_opportunity(**update_from(opp))
    assert _error(exc)["ErrorList"][0]["Code"] == "INVALID_RESOURCE_STATE"


def test_submit_requires_fields_for_review(pc):
    created = pc.create_opportunity(
        Catalog="AWS", ClientToken="minimal", Customer={"Account": {"CompanyName": "Tiny Co"}}
    )
    with pytest.raises(ClientError) as exc:
        pc.submit_opportunity(Catalog="AWS", Identifier=created["Id"], InvolvementType="Co-Sell")
    err = _error(exc)
    assert err["Reason"] == "BUSINESS_VALIDATION_FAILED"
    fields = {e["FieldName"] for e in err["ErrorList"]}
    assert {"Project.Title", "Customer.Account.WebsiteUrl", "LifeCycle.TargetCloseDate"} <= fields
    assert all(e["Code"] == "REQUIRED_FIELD_MISSING" for e in err["ErrorList"])


def test_aws_opportunity_summary_exists_after_submission(pc):
    opp = _create(pc)
    with pytest.raises(ClientError) as exc:
        pc.get_aws_opportunity_summary(Catalog="AWS", RelatedOpportunityIdentifier=opp["Id"])
    assert _error(exc)["Error"]["Code"] == "ResourceNotFoundException"
    associate_solution(pc, opp["Id"])
    pc.submit_opportunity(
        Catalog="AWS", Identifier=opp["Id"], InvolvementType="For Visibility Only", Visibility="Limited"
    )
    summary = pc.get_aws_opportunity_summary(Catalog="AWS", RelatedOpportunityIdentifier=opp["Id"])
    assert summary["InvolvementType"] == "For Visibility Only"
    assert summary["Visibility"] == "Limited"


def test_assign_associate_disassociate(pc):
    opp = _create(pc)
    pc.assign_opportunity(
        Catalog="AWS",
        Identifier=opp["Id"],
        Assignee={
            "Email": "owner@partner.example",
            "FirstName": "Sam",
            "LastName": "Owner",
            "BusinessTitle": "PartnerAccountManager",
        },
    )
    solution = pc.list_solutions(Catalog="AWS", Status=["Active"])["SolutionSummaries"][0]["Id"]
    pc.associate_opportunity(
        Catalog="AWS",
        OpportunityIdentifier=opp["Id"],
        RelatedEntityType="Solutions",
        RelatedEntityIdentifier=solution,
    )
    after = pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])
    assert after["OpportunityTeam"][0]["Email"] == "owner@partner.example"
    assert after["RelatedEntityIdentifiers"]["Solutions"] == [solution]
    with pytest.raises(ClientError) as exc:
        pc.associate_opportunity(
            Catalog="AWS",
            OpportunityIdentifier=opp["Id"],
            RelatedEntityType="Solutions",
            RelatedEntityIdentifier="S-999",
        )
    assert _error(exc)["Error"]["Code"] == "ResourceNotFoundException"
    pc.disassociate_opportunity(
        Catalog="AWS",
        OpportunityIdentifier=opp["Id"],
        RelatedEntityType="Solutions",
        RelatedEntityIdentifier=solution,
    )
    assert (
        pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])["RelatedEntityIdentifiers"].get("Solutions")
        == []
    )


def test_simulated_aws_update_deep_merges_and_bumps_last_modified(pc, ctl):
    opp = _create(pc)
    ctl(
        "simulate/aws-update",
        {"catalog": "AWS", "identifier": opp["Id"], "LifeCycle": {"Stage": "Qualified"}},
    )
    after = pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])
    assert after["LifeCycle"]["Stage"] == "Qualified"
    assert after["LifeCycle"]["TargetCloseDate"] == opp["LifeCycle"]["TargetCloseDate"]
    assert after["LastModifiedDate"] > opp["LastModifiedDate"]
    with pytest.raises(ClientError):
        pc.update_opportunity(**update_from(opp))  # the console edit invalidates the old LastModifiedDate


class TestListOpportunities:
    def test_pagination_covers_book_once_in_default_order(self, pc, ctl):
        ids = ctl("seed", {"opportunities": 250, "seed": 3})["opportunity_ids"]
        seen, dates = [], []
        for page in pc.get_paginator("list_opportunities").paginate(Catalog="AWS", MaxResults=100):
            assert len(page["OpportunitySummaries"]) <= 100
            seen += [s["Id"] for s in page["OpportunitySummaries"]]
            dates += [s["LastModifiedDate"] for s in page["OpportunitySummaries"]]
        assert sorted(seen) == sorted(ids)
        assert dates == sorted(dates, reverse=True)  # default: LastModifiedDate DESCENDING

    @pytest.mark.parametrize("size", [0, 101])
    def test_max_results_bounds(self, raw, size):
        with pytest.raises(ClientError) as exc:
            raw.list_opportunities(Catalog="AWS", MaxResults=size)
        assert exc.value.response["ErrorList"][0] == {
            "FieldName": "MaxResults",
            "Code": "VALUE_OUT_OF_RANGE",
            "Message": "MaxResults must be between 1 and 100",
        }

    def test_after_last_modified_date_is_inclusive(self, pc):
        opp = _create(pc)
        found = pc.list_opportunities(
            Catalog="AWS", LastModifiedDate={"AfterLastModifiedDate": opp["LastModifiedDate"]}
        )
        assert [s["Id"] for s in found["OpportunitySummaries"]] == [opp["Id"]]
        later = opp["LastModifiedDate"] + dt.timedelta(milliseconds=1)
        assert (
            pc.list_opportunities(Catalog="AWS", LastModifiedDate={"AfterLastModifiedDate": later})[
                "OpportunitySummaries"
            ]
            == []
        )

    def test_filters_and_sort(self, pc, ctl):
        ctl("seed", {"opportunities": 120, "seed": 9})
        approved = pc.list_opportunities(
            Catalog="AWS",
            LifeCycleReviewStatus=["Approved"],
            MaxResults=100,
            Sort={"SortBy": "CustomerCompanyName", "SortOrder": "ASCENDING"},
        )
        rows = approved["OpportunitySummaries"]
        assert rows
        assert all(r["LifeCycle"]["ReviewStatus"] == "Approved" for r in rows)
        names = [r["Customer"]["Account"]["CompanyName"] for r in rows]
        assert names == sorted(names)
        by_id = pc.list_opportunities(
            Catalog="AWS", MaxResults=5, Sort={"SortBy": "Identifier", "SortOrder": "DESCENDING"}
        )["OpportunitySummaries"]
        assert [r["Id"] for r in by_id] == sorted((r["Id"] for r in by_id), reverse=True)

    def test_summaries_hold_only_summary_fields(self, pc):
        opp = _create(pc)
        summary = pc.list_opportunities(Catalog="AWS")["OpportunitySummaries"][0]
        assert summary["Id"] == opp["Id"]
        assert "Title" not in summary["Project"]  # ProjectSummary has no Title
        assert "NextStepsHistory" not in summary["LifeCycle"]
        assert "Contacts" not in summary["Customer"]
        summary_shape = shapes.shape("OpportunitySummary")
        assert set(summary) <= set(summary_shape.members) | {"ResponseMetadata"}

    def test_list_is_fast_for_ten_thousand(self, pc, ctl):
        ctl("quotas", {"enabled": False})
        ctl("seed", {"opportunities": 10_000, "seed": 1})
        total = sum(
            len(p["OpportunitySummaries"])
            for p in pc.get_paginator("list_opportunities").paginate(Catalog="AWS", MaxResults=100)
        )
        assert total == 10_000


_ASSIGNEE = {"Email": "sam.owner@partner.example", "FirstName": "Sam", "LastName": "Owner"}


@pytest.mark.parametrize(
    ("assignee", "field"),
    [
        pytest.param({**_ASSIGNEE, "Email": "Sam.Owner@Partner.example"}, "Assignee.Email", id="upper-case"),
        pytest.param({**_ASSIGNEE, "Email": "not-an-address"}, "Assignee.Email", id="malformed"),
        pytest.param({**_ASSIGNEE, "FirstName": "S" * 81}, "Assignee.FirstName", id="name-too-long"),
        pytest.param({**_ASSIGNEE, "Phone": "5550100"}, "Assignee.Phone", id="phone-not-e164"),
    ],
)
def test_assign_checks_the_assignee_against_the_model(pc, assignee, field):
    opp = _create(pc)
    with pytest.raises(ClientError) as exc:
        pc.assign_opportunity(
            Catalog="AWS",
            Identifier=opp["Id"],
            Assignee={**assignee, "BusinessTitle": "PartnerAccountManager"},
        )
    body = _error(exc)
    assert body["Error"]["Code"] == "ValidationException"
    assert [e["FieldName"] for e in body["ErrorList"]] == [field]
    # A refused call changes nothing.
    after = pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])
    assert after["LastModifiedDate"] == opp["LastModifiedDate"]
    assert after.get("OpportunityTeam") == opp.get("OpportunityTeam")


def test_assign_refuses_a_rejected_opportunity_and_an_unknown_one(pc, ctl):
    opp = _submit_and_review(pc, ctl, _create(pc), "Rejected")
    assignee = {**_ASSIGNEE, "BusinessTitle": "PartnerAccountManager"}
    with pytest.raises(ClientError) as exc:
        pc.assign_opportunity(Catalog="AWS", Identifier=opp["Id"], Assignee=assignee)
    assert _error(exc)["Error"]["Code"] == "ValidationException"
    assert _error(exc)["Reason"] == "BUSINESS_VALIDATION_FAILED"
    with pytest.raises(ClientError) as exc:
        pc.assign_opportunity(Catalog="AWS", Identifier="O9999999", Assignee=assignee)
    assert _error(exc)["Error"]["Code"] == "ResourceNotFoundException"
