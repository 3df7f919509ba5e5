"""``cosell_snapshot`` as an ops user meets it (dag.test() on the emulators): a dry run shows the opportunity
and writes nothing; applying takes one resource snapshot, audited, shown on the deal with one note; bad
params fail the run at once."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from tests.hubspot_reads import deal_notes

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

HEADERS = {"Authorization": "Bearer test-token"}
PROPS = ["aws_total_resources", "aws_last_resource_upload", "aws_partner_resources", "aws_opportunity_id"]


def _accepted_referral_deal(stack: Any) -> tuple[str, str]:
    """(opportunity id, deal id): an AWS referral accepted in Partner Central, its deal linked in HubSpot."""
    made = stack.pc_control("simulate/aws-referral", {"catalog": "AWS"})
    task = stack.pc.start_engagement_by_accepting_invitation_task(
        Catalog="AWS", ClientToken="snapshot-dag-accept", Identifier=made["invitation_id"]
    )
    deadline = time.monotonic() + 20
    while True:
        [summary] = stack.pc.list_engagement_by_accepting_invitation_tasks(
            Catalog="AWS", TaskIdentifier=[task["TaskId"]]
        )["TaskSummaries"]
        if summary["TaskStatus"] != "IN_PROGRESS" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert summary["TaskStatus"] == "COMPLETE"
    oid = str(summary["OpportunityId"])
    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/deals",
        json={"properties": {"dealname": "Referral", "aws_opportunity_id": oid}},
        headers=HEADERS,
        timeout=30,
    )
    r.raise_for_status()
    return oid, str(r.json()["id"])


def _snapshot_notes(stack: Any, deal_id: str) -> list[str]:
    return deal_notes(stack.hs_url, deal_id, "New resource snapshot")


def test_cosell_snapshot_dry_run_then_one_snapshot_on_the_deal(sync_stack: Any) -> None:
    oid, deal_id = _accepted_referral_deal(sync_stack)
    sync_stack.run("cosell_snapshot", conf={"deal_id": deal_id, "opportunity_id": oid}, expect="failed")

    sync_stack.reset_calls()
    sync_stack.run("cosell_snapshot", conf={"opportunity_id": oid})
    pc_calls, _ = sync_stack.calls()
    assert "CreateResourceSnapshot" not in pc_calls["by_operation"]
    assert not sync_stack.deal_by_opportunity(oid, PROPS)["properties"].get("aws_partner_resources")

    sync_stack.run("cosell_snapshot", conf={"deal_id": deal_id, "dry_run": False})
    pc_calls, _ = sync_stack.calls()
    assert pc_calls["by_operation"]["CreateResourceSnapshot"] == 1
    props = sync_stack.deal_by_opportunity(oid, PROPS)["properties"]
    listed = json.loads(props["aws_partner_resources"])
    # Revision 1 is the one AWS took when the referral was accepted; ours is revision 2.
    assert [r["revision"] for r in listed] == [2, 1]
    assert listed[0]["snapshot_id"].startswith("arn:")
    assert props["aws_total_resources"] == "2"
    assert props["aws_last_resource_upload"]
    [note] = _snapshot_notes(sync_stack, deal_id)
    assert "revision 2" in note
    entries = [e for e in sync_stack.audit(oid) if e["action"] == "CREATE_RESOURCE_SNAPSHOT"]
    assert [e["success"] for e in entries] == [True]
