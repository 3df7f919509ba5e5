"""The engagement context as a seller edits it, and the three-way merge that decides what goes where.

What a user notices: the text on the deal reads back to the same values; an edit in HubSpot goes to AWS,
an edit in AWS comes to HubSpot, and a value AWS changed meanwhile is never overwritten, also when the
engagement moves between our read and our write (``ConflictException``: read again, merge again, retry).
"""

from __future__ import annotations

import copy
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from cosell_sync.engagements import (
    _push,
    editable,
    engagement_status,
    flatten_contexts,
    merge_contexts,
    parse_contexts,
    render_contexts,
    summary_properties,
    update_payload,
)
from cosell_sync.errors import ConflictError, ValidationError

PROJECT = {
    "Id": "1",
    "Type": "CustomerProject",
    "Payload": {
        "CustomerProject": {
            "Customer": {"CompanyName": "Example Corp", "CountryCode": "US"},
            "Project": {
                "Title": "Cloud migration",
                "BusinessProblem": "Two data centres to close.\nLease ends in June.",
                "TargetCompletionDate": "2027-03-06",
            },
        }
    },
}
LEAD = {
    "Id": "2",
    "Type": "Lead",
    "Payload": {
        "Lead": {
            "QualificationStatus": "Qualified",
            "Customer": {"CompanyName": "Lead Co", "Address": {"City": "Berlin"}},
            "Interactions": [{"SourceType": "Web", "Contact": {"Email": "a@lead.example"}}],
        }
    },
}


def test_the_text_reads_back_to_the_same_values_also_over_several_lines() -> None:
    flat = flatten_contexts([PROJECT, LEAD])
    text = render_contexts(flat)
    assert "[CustomerProject 1]" in text
    assert "Project.BusinessProblem: Two data centres to close.\n  Lease ends in June." in text
    assert "Interactions.0.Contact.Email: a@lead.example" in text
    assert parse_contexts(text) == flat


def test_a_seller_edit_is_read_and_stray_lines_are_dropped() -> None:
    text = render_contexts(flatten_contexts([PROJECT]))
    edited = (
        text.replace("Project.Title: Cloud migration", "Project.Title:   Data platform  ") + "\nsome note"
    )
    parsed = parse_contexts(edited)
    assert parsed[("CustomerProject 1", "Project.Title")] == "Data platform"
    assert len(parsed) == len(flatten_contexts([PROJECT]))


def test_merge_sends_hubspot_edits_takes_aws_edits_and_keeps_a_newer_aws_value() -> None:
    base = flatten_contexts([PROJECT])
    title = ("CustomerProject 1", "Project.Title")
    problem = ("CustomerProject 1", "Project.BusinessProblem")
    country = ("CustomerProject 1", "Customer.CountryCode")
    hubspot = {**base, title: "From HubSpot", country: "DE"}
    aws = {**base, problem: "AWS rewrote the problem", country: "FR"}
    merged = merge_contexts(base, hubspot, aws)
    assert merged["push"] == {title: "From HubSpot"}
    assert merged["conflicts"] == [country]
    assert merged["hubspot"][title] == "From HubSpot"
    assert merged["hubspot"][problem] == "AWS rewrote the problem"
    assert merged["hubspot"][country] == "FR", "AWS's newer edit of the same value wins"
    assert merged["base"] == merged["hubspot"]


def test_merge_puts_back_values_aws_owns_and_keeps_edits_pending_when_not_sending() -> None:
    base = flatten_contexts([PROJECT, LEAD])
    email = ("Lead 2", "Interactions.0.Contact.Email")
    assert not editable(email)
    assert editable(("Lead 2", "Customer.Address.City"))
    refused = merge_contexts(base, {**base, email: "b@lead.example"}, base)
    assert refused["refused"] == [email]
    assert refused["push"] == {}
    assert refused["hubspot"][email] == "a@lead.example"
    title = ("CustomerProject 1", "Project.Title")
    pending = merge_contexts(base, {**base, title: "Later"}, base, send=False)
    assert pending["push"] == {}
    assert pending["hubspot"][title] == "Later"
    assert pending["base"][title] == "Cloud migration"


def test_update_payload_carries_the_edits_and_leaves_lead_interactions_alone() -> None:
    payload = update_payload(PROJECT, {"Project.Title": "New", "Customer.WebsiteUrl": "https://x.example"})
    assert payload["CustomerProject"]["Project"]["Title"] == "New"
    assert payload["CustomerProject"]["Customer"]["WebsiteUrl"] == "https://x.example"
    assert PROJECT["Payload"]["CustomerProject"]["Project"]["Title"] == "Cloud migration"
    lead = update_payload(LEAD, {"Customer.Address.City": "Munich"})
    assert lead == {
        "Lead": {
            "QualificationStatus": "Qualified",
            "Customer": {"CompanyName": "Lead Co", "Address": {"City": "Munich"}},
        }
    }


@pytest.mark.parametrize(
    ("stage", "status"),
    [
        ("Prospect", "Active"),
        ("Committed", "Active"),
        ("Launched", "Completed"),
        ("Closed Lost", "Closed Lost"),
    ],
)
def test_status_is_derived_from_the_opportunity_stage(stage: str, status: str) -> None:
    assert engagement_status(True, stage) == status
    assert engagement_status(False, stage) is None


def test_summary_properties_show_aws_people_and_empty_without_summary() -> None:
    props = summary_properties(
        {
            "LifeCycle": {"Stage": "Qualify", "NextSteps": "Call"},
            "InvolvementType": "Co-Sell",
            "OpportunityTeam": [
                {"FirstName": "Alex", "LastName": "Seller", "Email": "a@amazon.com", "BusinessTitle": "PSM"}
            ],
        }
    )
    assert props["aws_aws_team"] == "Alex Seller <a@amazon.com> (PSM)"
    assert props["aws_aws_stage"] == "Qualify"
    assert set(summary_properties(None).values()) == {""}


class FakeRun:
    """What ``_push`` needs of the step: a Partner Central whose engagement AWS may edit meanwhile."""

    def __init__(self, contexts: list[dict[str, Any]], aws_edits: list[dict[str, str]]) -> None:
        self.env = SimpleNamespace(config=SimpleNamespace(conflict_retries=2))
        self.contexts = copy.deepcopy(contexts)
        self.modified = "2026-01-01T00:00:00.000+00:00"
        self.aws_edits = list(aws_edits)  # applied one per update attempt, before it is checked
        self.calls: Counter[str] = Counter()
        self.sent: list[dict[str, Any]] = []

    def call(self, op: str, method: str, owner: str | None, **kwargs: Any) -> dict[str, Any]:
        self.calls[op] += 1
        assert method == "update_engagement_context"
        if self.aws_edits:
            for path, value in self.aws_edits.pop(0).items():
                self.contexts[0]["Payload"]["CustomerProject"]["Project"][path] = value
            self.modified = f"2026-01-01T00:00:0{self.calls[op]}.000+00:00"
        if kwargs["EngagementLastModifiedAt"].isoformat(timespec="milliseconds") != self.modified:
            raise ConflictError("stale", service="partner_central", code="ConflictException")
        if kwargs["Payload"]["CustomerProject"]["Customer"].get("CountryCode") == "XX":
            raise ValidationError("CountryCode XX", service="partner_central", code="ValidationException")
        self.contexts[0]["Payload"] = copy.deepcopy(kwargs["Payload"])
        self.sent.append(kwargs["Payload"])
        self.modified = "2026-01-02T00:00:00.000+00:00"
        return {"EngagementLastModifiedAt": self.modified}

    def read_engagement(self, eid: str, count: int | None) -> dict[str, Any]:
        self.calls["GetEngagement"] += 1
        return {"Contexts": copy.deepcopy(self.contexts), "ModifiedAt": self.modified}


def _edit(title: str | None = None, country: str | None = None) -> dict[tuple[str, str], str]:
    flat = flatten_contexts([PROJECT])
    if title:
        flat[("CustomerProject 1", "Project.Title")] = title
    if country:
        flat[("CustomerProject 1", "Customer.CountryCode")] = country
    return flat


def _run_push(fake: FakeRun, hubspot: dict[tuple[str, str], str]) -> tuple[Any, ...]:
    out: dict[str, Any] = {"pushed": {}, "conflicts": {}, "refused": {}, "failed": {}, "audit": []}
    notes: dict[str, list[str]] = {"D1": []}
    result = _push(
        fake,  # type: ignore[arg-type]
        "eng-1",
        "O1",
        "D1",
        copy.deepcopy(fake.contexts),
        fake.modified,
        flatten_contexts([PROJECT]),
        hubspot,
        True,
        out,
        notes,
    )
    return (*result, out, notes["D1"])


def test_a_stale_lock_is_read_again_merged_again_and_sent_with_the_other_aws_edit_kept() -> None:
    fake = FakeRun([PROJECT], aws_edits=[{"BusinessProblem": "AWS edit meanwhile"}])
    _, modified, _, fresh, out, notes = _run_push(fake, _edit(title="From HubSpot"))
    assert fake.calls["UpdateEngagementContext"] == 2
    assert fake.calls["GetEngagement"] == 1
    sent = fake.sent[-1]["CustomerProject"]["Project"]
    assert sent["Title"] == "From HubSpot"
    assert sent["BusinessProblem"] == "AWS edit meanwhile", "AWS's edit of another value is not overwritten"
    assert modified == "2026-01-02T00:00:00.000+00:00"
    assert fresh is not None
    assert [a["action"] for a in out["audit"]] == ["UPDATE_ENGAGEMENT_CONTEXT"]
    assert notes == []


def test_aws_editing_the_same_value_meanwhile_wins_and_nothing_is_sent() -> None:
    fake = FakeRun([PROJECT], aws_edits=[{"Title": "AWS title"}])
    _, _, merged, _, out, notes = _run_push(fake, _edit(title="From HubSpot"))
    assert fake.calls["UpdateEngagementContext"] == 1
    assert fake.sent == []
    assert merged["hubspot"][("CustomerProject 1", "Project.Title")] == "AWS title"
    assert out["conflicts"] == {"O1": ["CustomerProject 1 Project.Title"]}
    assert any("AWS changed it meanwhile" in n for n in notes)


def test_an_engagement_that_keeps_moving_leaves_the_edit_pending_after_the_retries() -> None:
    fake = FakeRun([PROJECT], aws_edits=[{"BusinessProblem": f"edit {i}"} for i in range(5)])
    _, _, merged, _, out, _ = _run_push(fake, _edit(title="From HubSpot"))
    assert fake.calls["UpdateEngagementContext"] == 3  # conflict_retries + 1
    assert out["failed"] == {"O1": "ConflictException after retries"}
    title = ("CustomerProject 1", "Project.Title")
    assert merged["hubspot"][title] == "From HubSpot", "still shown in HubSpot"
    assert merged["base"][title] == "Cloud migration", "not agreed: the next run sends it again"


def test_a_refused_edit_is_audited_put_back_and_told_on_the_deal() -> None:
    fake = FakeRun([PROJECT], aws_edits=[])
    _, _, merged, _, out, notes = _run_push(fake, _edit(country="XX"))
    assert merged["hubspot"][("CustomerProject 1", "Customer.CountryCode")] == "US"
    assert out["audit"][0]["success"] is False
    assert any("refused" in n for n in notes)
