"""``cosell_snapshot`` as an ops user meets it (dag.test() on the emulators): a dry run shows the opportunity
and writes nothing; applying takes one resource snapshot, audited, shown on the deal with one note; bad
params fail the run at once."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from tests.dags.scenarios import xcom
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


def test_cosell_snapshot_compares_a_revision_with_the_opportunity_now(sync_stack: Any) -> None:
    from cosell_sync.config import load_config
    from cosell_sync.storage import SnapshotStore

    oid, _ = _accepted_referral_deal(sync_stack)
    # AWS edits the next steps: AWS's running job takes revision 2; revision 1 still holds the old text.
    sync_stack.pc_control(
        "simulate/aws-update", {"identifier": oid, "LifeCycle": {"NextSteps": "Architecture review"}}
    )
    sync_stack.reset_calls()
    run = sync_stack.run("cosell_snapshot", conf={"opportunity_id": oid, "compare_revision": 1})
    out = xcom(run, "compare_snapshot")
    assert out["fields"] == ["Lifecycle.NextSteps"]
    cfg = load_config()
    store = SnapshotStore(sync_stack.aws("s3"), cfg.storage.bucket, cfg.storage.prefix)
    report = store.get_json(out["key"])
    assert run.run_id in out["key"]
    assert [(d["field"], d["now"]) for d in report["differences"]] == [
        ("Lifecycle.NextSteps", "Architecture review")
    ]
    pc_calls, _ = sync_stack.calls()
    assert pc_calls["by_operation"]["GetResourceSnapshot"] == 1
    assert "CreateResourceSnapshot" not in pc_calls["by_operation"]

    # Without compare_revision the task compares nothing; a revision that does not exist fails the run.
    plain = sync_stack.run("cosell_snapshot", conf={"opportunity_id": oid})
    assert "skipped" in xcom(plain, "compare_snapshot")
    sync_stack.run("cosell_snapshot", conf={"opportunity_id": oid, "compare_revision": 7}, expect="failed")


JOB_PROPS = ["aws_snapshot_job_status", "aws_snapshot_job_last_success", "aws_snapshot_job_last_failure"]


def _deal(stack: Any, deal_id: str, props: list[str]) -> dict[str, Any]:
    r = requests.get(
        f"{stack.hs_url}/crm/v3/objects/deals/{deal_id}",
        params={"properties": ",".join(props)},
        headers=HEADERS,
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["properties"]


def test_the_snapshot_jobs_status_and_failure_reach_the_deal(sync_stack: Any) -> None:
    """A referral accepted from HubSpot: cosell_reconcile shows its snapshot job's status and failures."""
    made = sync_stack.pc_control("simulate/aws-referral", {"catalog": "AWS"})
    sync_stack.run()
    r = requests.post(
        f"{sync_stack.hs_url}/crm/v3/objects/deals/search",
        headers=HEADERS,
        json={
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "aws_invitation_id",
                            "operator": "EQ",
                            "value": made["invitation_id"],
                        }
                    ]
                }
            ],
            "limit": 1,
        },
        timeout=30,
    )
    deal_id = str(r.json()["results"][0]["id"])
    sync_stack.update_deal(deal_id, {"aws_invitation_action": "Accept"})
    sync_stack.run()
    sync_stack.run()
    props = _deal(sync_stack, deal_id, [*JOB_PROPS, "aws_opportunity_id"])
    oid = str(props["aws_opportunity_id"])
    assert props["aws_snapshot_job_status"] == "Running"
    assert props["aws_snapshot_job_last_success"]
    assert not props.get("aws_snapshot_job_last_failure")

    # Nothing changed: the run reads no snapshot job.
    sync_stack.reset_calls()
    sync_stack.run()
    pc_calls, _ = sync_stack.calls()
    assert "GetResourceSnapshotJob" not in pc_calls["by_operation"]

    # The job fails at the execution an AWS edit started: the run that reads the edit shows the failure.
    [summary] = sync_stack.pc.list_resource_snapshot_jobs(
        Catalog="AWS", EngagementIdentifier=str(made["engagement_id"])
    )["ResourceSnapshotJobSummaries"]
    sync_stack.pc_control("simulate/aws-update", {"identifier": oid, "LifeCycle": {"NextSteps": "Kickoff"}})
    sync_stack.pc_control(
        "simulate/snapshot-job-failure", {"job_id": summary["Id"], "message": "Snapshot role is missing"}
    )
    sync_stack.run()
    props = _deal(sync_stack, deal_id, JOB_PROPS)
    assert props["aws_snapshot_job_last_failure"] == "Snapshot role is missing"
    assert props["aws_snapshot_job_status"] == "Running"
