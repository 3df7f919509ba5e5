"""Tags both ways, as a seller meets them (``dag.test()`` of ``cosell_reconcile`` against the emulators).

A tag typed into the deal's ``aws_tags`` reaches the opportunity, a tag set in Partner Central reaches the
deal, a removal on either side removes it on the other, and a tag the model refuses is named on the deal
while the rest are applied.
"""

from __future__ import annotations

from typing import Any

import pytest
from scenarios import synced_book

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]


def _pc_tags(stack: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in stack.pc.list_tags_for_resource(ResourceArn=arn)["Tags"]}


def _deal(stack: Any, oid: str) -> dict[str, Any]:
    return stack.deal_by_opportunity(oid, ["aws_tags", "aws_sync_error"])


def _entries(text: str | None) -> set[str]:
    return {e for e in (text or "").split(";") if e}


def test_tags_round_trip_both_ways_with_an_invalid_tag_refused(sync_stack: Any) -> None:
    oid = synced_book(sync_stack, 1)[0]
    arn = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)["Arn"]
    deal = _deal(sync_stack, oid)

    # A seller types two tags and one the model refuses ('#' is no tag character); in the console someone
    # tags the opportunity, and AWS has its own aws: tag on it.
    sync_stack.update_deal(deal["id"], {"aws_tags": "Team:North;Bad#key:1;Region:EMEA"})
    sync_stack.pc.tag_resource(ResourceArn=arn, Tags=[{"Key": "Campaign", "Value": "Q3 launch"}])
    sync_stack.pc_control("simulate/aws-tags", {"resource_arn": arn, "tags": {"aws:source": "console"}})
    sync_stack.run()

    assert _pc_tags(sync_stack, arn) == {
        "Team": "North",
        "Region": "EMEA",
        "Campaign": "Q3 launch",
        "aws:source": "console",
    }
    props = _deal(sync_stack, oid)["properties"]
    assert _entries(props["aws_tags"]) == {
        "Team:North",
        "Region:EMEA",
        "Campaign:Q3 launch",
        r"aws\:source:console",
        "Bad#key:1",  # kept as the seller typed it, so they can fix it
    }
    error = props["aws_sync_error"]
    assert "aws_tags: tag 'Bad#key' not sent: a tag key may hold only letters" in error
    assert "Team" not in error
    actions = {e["action"] for e in sync_stack.audit(oid)}
    assert {"TAG_OPPORTUNITY", "UPDATE_DEAL_TAGS", "TAG_REFUSED"} <= actions

    # Removal both ways, in a full run: the seller drops Region and fixes the bad key (and removes AWS's
    # tag, which is read-only and comes back); in the console Campaign is removed and a tag added. Team is
    # changed on both sides to different values: a conflict, neither side overwritten. A console-only tag
    # edit does not move LastModifiedDate: it is read at the full refresh (tags.full_refresh_hours, or a
    # `full` run like this one) or when the opportunity or deal changes.
    sync_stack.update_deal(deal["id"], {"aws_tags": "Team:West;Campaign:Q3 launch;Good_key:1"})
    sync_stack.pc.untag_resource(ResourceArn=arn, TagKeys=["Campaign"])
    sync_stack.pc.tag_resource(
        ResourceArn=arn, Tags=[{"Key": "Stage gate", "Value": "2"}, {"Key": "Team", "Value": "East"}]
    )
    sync_stack.run(conf={"mode": "full"})

    assert _pc_tags(sync_stack, arn) == {
        "Team": "East",
        "Good_key": "1",
        "Stage gate": "2",
        "aws:source": "console",
    }
    props = _deal(sync_stack, oid)["properties"]
    assert _entries(props["aws_tags"]) == {"Team:West", "Good_key:1", "Stage gate:2", r"aws\:source:console"}
    error = props["aws_sync_error"]
    assert "aws_tags: tag 'Team' was changed in both HubSpot and Partner Central" in error
    assert "Bad#key" not in error  # fixed by the seller: its line is gone
    assert "West" not in error
    assert "East" not in error
    conflicts = [e for e in sync_stack.audit(oid) if e["action"] == "CONFLICT_DETECTED"]
    assert [sorted(e["changes"]) for e in conflicts] == [["aws_tags.Team"]]
