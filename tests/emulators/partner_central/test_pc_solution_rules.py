"""Solution rules: one to ten partner solutions before submission, and a solution, AWS product or Marketplace
offer before ``LifeCycle.Stage`` may be ``Committed``/``Launched`` (developer guide, "Associating,
disassociating and assigning opportunities"; docs/api-rules.md)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from pc_helpers import SOLUTION_ID, associate_solution, opportunity_payload, update_from, wait_for

from emulators.partner_central import PartnerCentralEmulator

RULE = "at least one and at most 10 partner solutions must be associated before submission"
OFFER_ARN = "arn:aws:aws-marketplace:us-east-1:999999999999:AWSMarketplace/Offer/offer-sampleOffer32"


def _create(pc: Any, **overrides: Any) -> dict[str, Any]:
    created = pc.create_opportunity(**opportunity_payload(**overrides))
    return pc.get_opportunity(Catalog="AWS", Identifier=created["Id"])


def _get(pc: Any, oid: str) -> dict[str, Any]:
    return pc.get_opportunity(Catalog="AWS", Identifier=oid)


def _start_and_wait(pc: Any, oid: str, token: str) -> dict[str, Any]:
    started = pc.start_engagement_from_opportunity_task(
        Catalog="AWS", ClientToken=token, Identifier=oid, AwsSubmission={"InvolvementType": "Co-Sell"}
    )
    assert started["TaskStatus"] == "IN_PROGRESS"

    def done() -> dict[str, Any] | None:
        tasks = pc.list_engagement_from_opportunity_tasks(Catalog="AWS", TaskIdentifier=[started["TaskId"]])
        task = tasks["TaskSummaries"][0]
        return task if task["TaskStatus"] != "IN_PROGRESS" else None

    return wait_for(done)


def _add_solutions(emu: PartnerCentralEmulator, count: int) -> list[str]:
    """Extra active solutions in the AWS catalog (the emulator seeds only five); white-box."""
    ids = []
    with emu.backend.lock:
        solutions = emu.backend.store("AWS")["solutions"]
        for i in range(count):
            sid = f"S-{2000000 + i}"
            solutions[sid] = {**solutions[SOLUTION_ID], "Id": sid, "Arn": sid, "Name": f"Extra {i}"}
            ids.append(sid)
    return ids


class TestSubmissionNeedsSolutions:
    def test_task_without_solution_fails_and_leaves_opportunity_unchanged(self, pc):
        before = _create(pc)
        task = _start_and_wait(pc, before["Id"], "no-solution")
        assert (task["TaskStatus"], task["ReasonCode"]) == ("FAILED", "OpportunityValidationFailed")
        assert RULE in task["Message"]
        assert "EngagementId" not in task
        after = _get(pc, before["Id"])
        assert after["LifeCycle"]["ReviewStatus"] == "Pending Submission"
        assert after["LastModifiedDate"] == before["LastModifiedDate"]
        assert pc.list_engagements(Catalog="AWS")["EngagementSummaryList"] == []
        invitations = pc.list_engagement_invitations(Catalog="AWS", ParticipantType="SENDER")
        assert invitations["EngagementInvitationSummaries"] == []
        with pytest.raises(ClientError) as exc:
            pc.get_aws_opportunity_summary(Catalog="AWS", RelatedOpportunityIdentifier=before["Id"])
        assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"

    def test_task_with_one_solution_completes(self, pc):
        opp = _create(pc)
        associate_solution(pc, opp["Id"])
        task = _start_and_wait(pc, opp["Id"], "one-solution")
        assert task["TaskStatus"] == "COMPLETE"
        assert task["EngagementId"]
        assert _get(pc, opp["Id"])["LifeCycle"]["ReviewStatus"] == "Submitted"

    def test_submit_opportunity_without_solution_is_a_business_validation_error(self, pc):
        before = _create(pc)
        with pytest.raises(ClientError) as exc:
            pc.submit_opportunity(Catalog="AWS", Identifier=before["Id"], InvolvementType="Co-Sell")
        err = exc.value.response
        assert err["Error"]["Code"] == "ValidationException"
        assert err["Reason"] == "BUSINESS_VALIDATION_FAILED"
        assert RULE in err["Error"]["Message"]
        assert [(e["FieldName"], e["Code"]) for e in err["ErrorList"]] == [
            ("RelatedEntityIdentifiers.Solutions", "NOT_ENOUGH_VALUES")
        ]
        after = _get(pc, before["Id"])
        assert after["LifeCycle"]["ReviewStatus"] == "Pending Submission"
        assert after["LastModifiedDate"] == before["LastModifiedDate"]

    def test_ten_solutions_are_enough_and_an_eleventh_is_refused(self, emu, pc):
        opp = _create(pc)
        extra = _add_solutions(emu, 11)
        for sid in extra[:10]:
            associate_solution(pc, opp["Id"], sid)
        associate_solution(pc, opp["Id"], extra[0])  # re-associating one already there is a no-op
        before = _get(pc, opp["Id"])
        with pytest.raises(ClientError) as exc:
            associate_solution(pc, opp["Id"], extra[10])
        err = exc.value.response
        assert err["Error"]["Code"] == "ValidationException"
        assert err["Reason"] == "BUSINESS_VALIDATION_FAILED"
        assert (err["ErrorList"][0]["FieldName"], err["ErrorList"][0]["Code"]) == (
            "RelatedEntityIdentifier",
            "TOO_MANY_VALUES",
        )
        after = _get(pc, opp["Id"])
        assert after["RelatedEntityIdentifiers"]["Solutions"] == extra[:10]
        assert after["LastModifiedDate"] == before["LastModifiedDate"]
        pc.submit_opportunity(Catalog="AWS", Identifier=opp["Id"], InvolvementType="Co-Sell")


class TestAssociateOpportunity:
    def test_unknown_solution_is_refused_and_record_unchanged(self, pc):
        before = _create(pc)
        with pytest.raises(ClientError) as exc:
            associate_solution(pc, before["Id"], "S-999")
        assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
        after = _get(pc, before["Id"])
        assert after["LastModifiedDate"] == before["LastModifiedDate"]
        assert not after.get("RelatedEntityIdentifiers", {}).get("Solutions")

    def test_malformed_solution_id_is_a_validation_error(self, pc):
        opp = _create(pc)
        with pytest.raises(ClientError) as exc:
            associate_solution(pc, opp["Id"], "not-a-solution")
        err = exc.value.response
        assert err["Error"]["Code"] == "ValidationException"
        assert err["ErrorList"][0]["Code"] == "INVALID_STRING_FORMAT"


class TestCommittedAndLaunchedNeedAnOffering:
    @pytest.mark.parametrize("stage", ["Committed", "Launched"])
    def test_update_without_association_is_refused(self, pc, stage):
        before = _create(pc)
        with pytest.raises(ClientError) as exc:
            pc.update_opportunity(**update_from(before, LifeCycle={**before["LifeCycle"], "Stage": stage}))
        err = exc.value.response
        assert err["Error"]["Code"] == "ValidationException"
        assert err["Reason"] == "BUSINESS_VALIDATION_FAILED"
        assert [e["FieldName"] for e in err["ErrorList"]] == ["LifeCycle.Stage"]
        after = _get(pc, before["Id"])
        assert after["LifeCycle"]["Stage"] == "Prospect"
        assert after["LastModifiedDate"] == before["LastModifiedDate"]

    @pytest.mark.parametrize(
        ("kind", "ident"),
        [("Solutions", SOLUTION_ID), ("AwsProducts", "AmazonRedshift"), ("AwsMarketplaceOffers", OFFER_ARN)],
    )
    def test_any_solution_product_or_offer_allows_committed(self, pc, kind, ident):
        opp = _create(pc)
        pc.associate_opportunity(
            Catalog="AWS",
            OpportunityIdentifier=opp["Id"],
            RelatedEntityType=kind,
            RelatedEntityIdentifier=ident,
        )
        current = _get(pc, opp["Id"])
        pc.update_opportunity(
            **update_from(current, LifeCycle={**current["LifeCycle"], "Stage": "Committed"})
        )
        assert _get(pc, opp["Id"])["LifeCycle"]["Stage"] == "Committed"

    def test_create_in_committed_is_refused(self, pc):
        payload = opportunity_payload()
        payload["LifeCycle"] = {**payload["LifeCycle"], "Stage": "Committed"}
        with pytest.raises(ClientError) as exc:
            pc.create_opportunity(**payload)
        assert exc.value.response["ErrorList"][0]["FieldName"] == "LifeCycle.Stage"
        assert pc.list_opportunities(Catalog="AWS")["OpportunitySummaries"] == []

    def test_last_offering_of_committed_opportunity_cannot_be_disassociated(self, pc):
        opp = _create(pc)
        associate_solution(pc, opp["Id"])
        current = _get(pc, opp["Id"])
        pc.update_opportunity(
            **update_from(current, LifeCycle={**current["LifeCycle"], "Stage": "Committed"})
        )
        with pytest.raises(ClientError) as exc:
            pc.disassociate_opportunity(
                Catalog="AWS",
                OpportunityIdentifier=opp["Id"],
                RelatedEntityType="Solutions",
                RelatedEntityIdentifier=SOLUTION_ID,
            )
        assert exc.value.response["ErrorList"][0]["Code"] == "ACTION_NOT_PERMITTED"
        assert _get(pc, opp["Id"])["RelatedEntityIdentifiers"]["Solutions"] == [SOLUTION_ID]


def test_seeded_opportunities_satisfy_the_solution_rules(pc, ctl):
    ctl("seed", {"opportunities": 300, "seed": 4})
    known = {s["Id"] for s in pc.list_solutions(Catalog="AWS", Status=["Active"])["SolutionSummaries"]}
    needing = 0
    for page in pc.get_paginator("list_opportunities").paginate(Catalog="AWS", MaxResults=100):
        for summary in page["OpportunitySummaries"]:
            lifecycle = summary["LifeCycle"]
            if (
                lifecycle["Stage"] in ("Committed", "Launched")
                or lifecycle["ReviewStatus"] != "Pending Submission"
            ):
                needing += 1
                solutions = _get(pc, summary["Id"])["RelatedEntityIdentifiers"].get("Solutions") or []
                assert 1 <= len(solutions) <= 10
                assert set(solutions) <= known
    assert needing > 100


class TestSolutionsControl:
    """``POST /_emulator/solutions``: the partner registers, edits and withdraws solutions."""

    def test_add_edit_and_withdraw_show_in_list_solutions(self, emu, pc, ctl):
        added = ctl("solutions", {"solutions": [{"Name": "New Practice", "Category": "Consulting Service"}]})
        new_id = added["solutions"][0]
        ctl("solutions", {"solutions": [{"Id": "S-1000001", "Status": "Inactive"}], "remove": ["S-1000004"]})
        listed = {s["Id"]: s for s in pc.list_solutions(Catalog="AWS", MaxResults=100)["SolutionSummaries"]}
        assert listed[new_id]["Name"] == "New Practice"
        assert listed[new_id]["Status"] == "Active"
        assert listed["S-1000001"]["Status"] == "Inactive"
        assert "S-1000004" not in listed
        # The other catalog is untouched.
        sandbox = pc.list_solutions(Catalog="Sandbox", MaxResults=100)["SolutionSummaries"]
        assert "S-1000004" in {s["Id"] for s in sandbox}

    def test_an_invalid_status_is_refused(self, emu):
        import requests

        r = requests.post(
            f"{emu.url}/_emulator/solutions",
            json={"solutions": [{"Id": "S-1", "Status": "Gone"}]},
            timeout=10,
        )
        assert r.status_code == 400
        assert r.json()["__type"].endswith("ValidationException")
