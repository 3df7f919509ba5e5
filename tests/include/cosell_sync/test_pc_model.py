"""Unit tests for ``cosell_sync.pc_model``: enum values and paths read from botocore's service model.

Configuration and transforms validate against these, so a wrong enum or a path that resolves to the wrong
shape would let a bad mapping through (or reject a good one) at start-up.
"""

from __future__ import annotations

import pytest

from cosell_sync.pc_model import parse_path, pc_enum, pc_shape, shape_at, strip_indexes


def test_pc_enum_review_status_in_model_order() -> None:
    assert pc_enum("ReviewStatus") == (
        "Pending Submission",
        "Submitted",
        "In review",
        "Approved",
        "Rejected",
        "Action Required",
    )


def test_pc_enum_stage_holds_the_configured_stages() -> None:
    stages = pc_enum("Stage")
    assert stages[0] == "Prospect"
    assert {"Qualified", "Committed", "Launched", "Closed Lost"} <= set(stages)
    # Exact spelling matters: PC rejects "In Review" / "closed lost".
    assert "In Review" not in pc_enum("ReviewStatus")


def test_pc_enum_of_unknown_shape_raises() -> None:
    with pytest.raises(Exception, match="NoSuchShape"):
        pc_enum("NoSuchShape")


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        pytest.param("Project.Title", ("Project", "Title"), id="dotted"),
        pytest.param(
            "Project.ExpectedCustomerSpend[0].Amount",
            ("Project", "ExpectedCustomerSpend", 0, "Amount"),
            id="list-index",
        ),
        pytest.param("Customer.Contacts[2].Email", ("Customer", "Contacts", 2, "Email"), id="index-2"),
        pytest.param("A[0][1].B", ("A", 0, 1, "B"), id="nested-indexes"),
        pytest.param("Title", ("Title",), id="single"),
    ],
)
def test_parse_path_splits_keys_and_indexes(path: str, keys: tuple[str | int, ...]) -> None:
    assert parse_path(path) == keys


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("", id="empty"),
        pytest.param("Project..Title", id="empty-segment"),
        pytest.param("Project.", id="trailing-dot"),
        pytest.param("Project.Spend[x]", id="non-numeric-index"),
        pytest.param("Project.Spend[0", id="unclosed-index"),
        pytest.param("Project.0Title", id="leading-digit"),
        pytest.param("Project.Ti tle", id="space"),
    ],
)
def test_parse_path_rejects_malformed_paths(path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        parse_path(path)


def test_strip_indexes() -> None:
    assert strip_indexes("Customer.Contacts[0].Email") == "Customer.Contacts.Email"
    assert strip_indexes("Project.ExpectedCustomerSpend[12].Amount") == "Project.ExpectedCustomerSpend.Amount"
    assert strip_indexes("Project.Title") == "Project.Title"


def test_shape_at_follows_structures_and_lists() -> None:
    root = pc_shape("GetOpportunity", "output")
    amount = shape_at(root, "Project.ExpectedCustomerSpend[0].Amount")
    assert amount is not None
    assert amount.type_name == "string"
    stage = shape_at(root, "LifeCycle.Stage")
    assert stage is not None
    assert stage.enum == list(pc_enum("Stage"))


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("Project.NoSuchMember", id="unknown-member"),
        pytest.param("Project[0]", id="index-on-structure"),
        pytest.param("Project.ExpectedCustomerSpend.Amount", id="member-on-list"),
        pytest.param("Project.Title.Length", id="member-on-scalar"),
    ],
)
def test_shape_at_returns_none_for_paths_outside_the_model(path: str) -> None:
    assert shape_at(pc_shape("GetOpportunity", "output"), path) is None


def test_pc_shape_input_differs_from_output() -> None:
    # UpdateOpportunity takes LastModifiedDate (the optimistic lock) as input; GetOpportunity returns it.
    update_in = pc_shape("UpdateOpportunity", "input")
    assert "LastModifiedDate" in update_in.members
    assert "Identifier" in update_in.members
    assert "LifeCycle" in pc_shape("GetOpportunity", "output").members
