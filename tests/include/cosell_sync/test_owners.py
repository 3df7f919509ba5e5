"""Deal owners to Partner Central: who the assignee is, when a deal is assigned, and what an error says.

What a user notices: an owner change is sent once (never again by a re-run), a deal seen for the first time
is not reassigned, and an owner Partner Central cannot take fails that deal with the field and the rule,
never the address itself.
"""

from __future__ import annotations

import pytest

from cosell_sync.errors import ParamError
from cosell_sync.owners import (
    OwnerChange,
    OwnerError,
    assignee,
    change_digest,
    check_params,
    display_name,
    email_problem,
    note_body,
    plan_changes,
)

OWNER = {"id": "101", "email": "Dana.Lee@Partner.example", "firstName": "Dana", "lastName": "Lee"}


@pytest.mark.parametrize(
    ("email", "rule"),
    [
        pytest.param(None, "missing", id="none"),
        pytest.param("  ", "missing", id="blank"),
        pytest.param("dana.lee", "malformed", id="no-at"),
        pytest.param("dana lee@partner.example", "malformed", id="space"),
        pytest.param("dana@partner", "malformed", id="no-tld"),
        pytest.param("d" * 70 + "@partner.example", "malformed", id="over-80"),
    ],
)
def test_an_email_partner_central_refuses_is_named_by_rule_not_value(email: str | None, rule: str) -> None:
    problem = email_problem(email)
    assert problem is not None
    assert problem.startswith(f"owner email: {rule}")
    assert "Assignee.Email" in problem
    if email and email.strip():
        assert email.strip() not in problem


def test_upper_case_addresses_are_sent_in_lower_case() -> None:
    # The model's Email pattern has only lower-case letters; domains are case-insensitive.
    assert email_problem("Dana.Lee@Partner.example") is None
    member = assignee(OWNER, None, "PartnerAccountManager")
    assert member == {
        "Email": "dana.lee@partner.example",
        "FirstName": "Dana",
        "LastName": "Lee",
        "BusinessTitle": "PartnerAccountManager",
    }
    assert display_name(member) == "Dana Lee"


def test_the_deal_title_wins_over_the_default() -> None:
    assert assignee(OWNER, "Solutions Architect", "PartnerAccountManager")["BusinessTitle"] == (
        "Solutions Architect"
    )
    assert assignee(OWNER, "  ", "PartnerAccountManager")["BusinessTitle"] == "PartnerAccountManager"


@pytest.mark.parametrize(
    ("owner", "title", "field"),
    [
        pytest.param({**OWNER, "email": None}, None, "owner email: missing", id="no-email"),
        pytest.param({**OWNER, "email": "not an address"}, None, "owner email: malformed", id="bad-email"),
        pytest.param({**OWNER, "firstName": ""}, None, "owner first name: missing", id="no-first-name"),
        pytest.param({**OWNER, "lastName": None}, None, "owner last name: missing", id="no-last-name"),
        pytest.param(OWNER, "T" * 81, "business title: longer than 80", id="long-title"),
    ],
)
def test_an_owner_that_cannot_be_an_assignee_fails_with_the_field(
    owner: dict, title: str | None, field: str
) -> None:
    with pytest.raises(OwnerError) as exc:
        assignee(owner, title, "PartnerAccountManager")
    assert exc.value.message.startswith(field)
    assert "@" not in exc.value.message


def _row(owner: str | None, *, wanted: str | None = None, error: str | None = None) -> dict:
    return {
        "opportunity_id": "O1",
        "owner_id": owner,
        "recorded_at": "2026-12-01T00:00:00Z",
        "wanted_owner_id": wanted,
        "error": error,
    }


def test_three_way_plan_assigns_only_a_change_since_the_last_sync() -> None:
    state = {"d1": _row("a"), "d2": _row("a"), "d3": _row("a"), "d5": _row("a", wanted="b", error="x")}
    current = {
        "d1": ("O1", "b"),  # changed: assign
        "d2": ("O2", "a"),  # unchanged: nothing
        "d3": ("O3", None),  # owner removed: recorded, the API cannot unassign
        "d4": ("O4", "c"),  # first sight: recorded, not assigned
        "d5": ("O5", "a"),  # a failed change undone in HubSpot: settled, error cleared
    }
    changes, record = plan_changes(state, current)
    assert changes == [OwnerChange("d1", "O1", "a", "b", "2026-12-01T00:00:00Z")]
    assert record == {"d3": None, "d4": "c", "d5": "a"}


def test_a_failed_change_is_tried_again_and_a_newer_owner_replaces_it() -> None:
    state = {"d1": _row("a", wanted="b", error="owner email: missing")}
    changes, _ = plan_changes(state, {"d1": ("O1", "b")})
    assert [c.new_owner_id for c in changes] == ["b"]
    changes, _ = plan_changes(state, {"d1": ("O1", "c")})
    assert [(c.old_owner_id, c.new_owner_id) for c in changes] == [("a", "c")]


def test_a_rerun_after_the_state_moved_plans_nothing() -> None:
    changes, record = plan_changes({"d1": _row("b")}, {"d1": ("O1", "b")})
    assert (changes, record) == ([], {})


def test_the_note_key_is_stable_for_the_same_changes_and_new_for_a_later_one() -> None:
    one = [OwnerChange("d1", "O1", "a", "b", "t1"), OwnerChange("d2", "O2", "a", "c", "t1")]
    assert change_digest(one) == change_digest(list(reversed(one)))
    # a -> b again after b -> a: recorded at another time, so another note.
    assert change_digest([OwnerChange("d1", "O1", "a", "b", "t2")]) != change_digest(one[:1])


def test_the_note_names_the_assignee() -> None:
    assert "Opportunity reassigned to Dana &lt;Lee&gt;" in note_body("Dana <Lee>")


@pytest.mark.parametrize(
    ("deal_id", "opportunity_id", "email", "message"),
    [
        pytest.param(
            "", "", "a@b.example", "give exactly one of deal_id or opportunity_id (got none)", id="none"
        ),
        pytest.param("1", "O1", "a@b.example", "(got deal_id, opportunity_id)", id="both"),
        pytest.param("1", "", "", "assignee_email: missing", id="no-email"),
        pytest.param("1", "", "a b@c", "assignee_email: malformed", id="bad-email"),
    ],
)
def test_cosell_assign_params_are_checked_before_any_call(
    deal_id: str, opportunity_id: str, email: str, message: str
) -> None:
    with pytest.raises(ParamError) as exc:
        check_params(deal_id, opportunity_id, email)
    assert message in str(exc.value)
    assert "nothing was assigned" in str(exc.value)
    check_params("", "O1", "Ana@B.example")  # one id and a valid address pass
