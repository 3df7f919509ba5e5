from __future__ import annotations

import pytest

from cosell_sync.gating import (
    ACTION_REQUIRED_EDITABLE,
    LOCKED_AFTER_APPROVAL,
    UnknownReviewStatusError,
    gate,
)

TITLE = "Project.Title"
AMOUNT = "Project.ExpectedCustomerSpend[0].Amount"
CITY = "Customer.Account.Address.City"
STAGE = "LifeCycle.Stage"
WEBSITE = "Customer.Account.WebsiteUrl"
INDUSTRY = "Customer.Account.Industry"


@pytest.mark.parametrize(
    ("status", "allowed", "deferred", "blocked"),
    [
        pytest.param(None, {TITLE, AMOUNT, STAGE}, {}, {}, id="not-yet-created"),
        pytest.param("Pending Submission", {TITLE, AMOUNT, STAGE}, {}, {}, id="pending-submission"),
        pytest.param(
            "Submitted",
            set(),
            dict.fromkeys((TITLE, AMOUNT, STAGE), "REVIEW_IN_PROGRESS"),
            {},
            id="submitted",
        ),
        pytest.param(
            "In review",
            set(),
            dict.fromkeys((TITLE, AMOUNT, STAGE), "REVIEW_IN_PROGRESS"),
            {},
            id="in-review",
        ),
        pytest.param(
            "Action Required",
            {AMOUNT},
            dict.fromkeys((TITLE, STAGE), "NOT_EDITABLE_IN_ACTION_REQUIRED"),
            {},
            id="action-required",
        ),
        pytest.param("Approved", {AMOUNT, STAGE}, {}, {TITLE: "LOCKED_AFTER_APPROVAL"}, id="approved"),
        pytest.param(
            "Rejected", set(), {}, dict.fromkeys((TITLE, AMOUNT, STAGE), "REJECTED_READ_ONLY"), id="rejected"
        ),
    ],
)
def test_gate_by_review_status(status, allowed, deferred, blocked):
    decision = gate(status, [TITLE, AMOUNT, STAGE])
    assert decision.allowed == allowed
    assert decision.deferred == deferred
    assert decision.blocked == blocked


@pytest.mark.parametrize(
    ("status", "path", "outcome"),
    [
        pytest.param("Action Required", CITY, "allowed", id="ar-address-editable"),
        pytest.param("Action Required", WEBSITE, "allowed", id="ar-website-editable"),
        pytest.param("Action Required", "LifeCycle.TargetCloseDate", "allowed", id="ar-close-date-editable"),
        pytest.param(
            "Action Required", "Project.CustomerBusinessProblem", "allowed", id="ar-problem-editable"
        ),
        pytest.param("Action Required", INDUSTRY, "deferred", id="ar-industry-not-editable"),
        pytest.param(
            "Action Required", "Customer.Contacts[0].Email", "deferred", id="ar-contact-not-editable"
        ),
        pytest.param("Approved", WEBSITE, "blocked", id="approved-website-locked"),
        pytest.param("Approved", INDUSTRY, "blocked", id="approved-industry-locked"),
        pytest.param("Approved", "Customer.Account.Address.PostalCode", "blocked", id="approved-zip-locked"),
        pytest.param("Approved", CITY, "allowed", id="approved-city-free"),
        pytest.param("Approved", "Customer.Contacts[0].Email", "allowed", id="approved-contact-free"),
    ],
)
def test_field_rules(status, path, outcome):
    decision = gate(status, [path])
    where = "allowed" if path in decision.allowed else "deferred" if path in decision.deferred else "blocked"
    assert where == outcome


def test_rule_tables_match_the_api_rules():
    assert len(LOCKED_AFTER_APPROVAL) == 7
    assert "Project.ExpectedCustomerSpend.Amount" in ACTION_REQUIRED_EDITABLE
    assert "PartnerOpportunityIdentifier" in ACTION_REQUIRED_EDITABLE & LOCKED_AFTER_APPROVAL


@pytest.mark.parametrize("status", ["In Review", "approved", "Closed"])
def test_unknown_status_is_a_precise_error(status):
    with pytest.raises(
        UnknownReviewStatusError, match=f"ReviewStatus '{status}' is not a Partner Central value"
    ):
        gate(status, [TITLE])


def test_unknown_status_is_rejected_even_without_paths():
    with pytest.raises(UnknownReviewStatusError):
        gate("In Review", [])
