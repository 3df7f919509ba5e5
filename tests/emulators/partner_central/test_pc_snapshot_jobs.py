"""Resource snapshot jobs: the state machine the API reference documents (create, start, stop, delete) and
"a new snapshot only if the resource state has changed", with the event each new revision emits."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from pc_helpers import associate_solution, opportunity_payload, update_from, wait_for

TEMPLATE = "PartnerView1"


@pytest.fixture
def engaged(pc, ctl):
    """An approved opportunity with its engagement (the submission task also starts AWS's own job)."""
    opp = pc.create_opportunity(**opportunity_payload())
    associate_solution(pc, opp["Id"])
    started = pc.start_engagement_from_opportunity_task(
        Catalog="AWS", ClientToken="sj-1", Identifier=opp["Id"], AwsSubmission={"InvolvementType": "Co-Sell"}
    )

    def done():
        tasks = pc.list_engagement_from_opportunity_tasks(Catalog="AWS", TaskIdentifier=[started["TaskId"]])
        task = tasks["TaskSummaries"][0]
        return task if task["TaskStatus"] == "COMPLETE" else None

    eid = wait_for(done)["EngagementId"]
    ctl("simulate/review", {"identifier": opp["Id"], "review_status": "Approved"})
    return opp["Id"], eid


def _revisions(pc, eid, oid):
    return pc.list_resource_snapshots(
        Catalog="AWS",
        EngagementIdentifier=eid,
        ResourceIdentifier=oid,
        ResourceSnapshotTemplateIdentifier=TEMPLATE,
    )["ResourceSnapshotSummaries"]


def _create_job(pc, eid, oid, token="job-1"):  # noqa: S107 (a ClientToken, not a secret)
    return pc.create_resource_snapshot_job(
        Catalog="AWS",
        ClientToken=token,
        EngagementIdentifier=eid,
        ResourceType="Opportunity",
        ResourceIdentifier=oid,
        ResourceSnapshotTemplateIdentifier=TEMPLATE,
    )


def _edit(pc, oid, next_steps=None, comment=None):
    """Edit the next steps (in the snapshot's view) or the additional comments (not in it)."""
    opp = pc.get_opportunity(Catalog="AWS", Identifier=oid)
    changes = {}
    if next_steps:
        changes["LifeCycle"] = {**opp["LifeCycle"], "NextSteps": next_steps}
    if comment:
        changes["Project"] = {**opp["Project"], "AdditionalComments": comment}
    pc.update_opportunity(**update_from(opp, **changes))


def _error(call, **kwargs):
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return exc.value.response["Error"]["Code"]


def test_job_is_created_stopped_and_same_token_gives_same_job(pc, engaged):
    oid, eid = engaged
    job = _create_job(pc, eid, oid)
    assert _create_job(pc, eid, oid)["Id"] == job["Id"]
    got = pc.get_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    assert (got["Status"], got["ResourceId"], got["ResourceSnapshotTemplateName"]) == (
        "Stopped",
        oid,
        TEMPLATE,
    )
    assert _revisions(pc, eid, oid) == []
    # A second job for the same resource, engagement and template (another token) conflicts.
    assert _error(_create_job, pc=pc, eid=eid, oid=oid, token="job-2") == "ConflictException"


def test_start_snapshots_only_changed_state(pc, engaged, emu):
    oid, eid = engaged
    job = _create_job(pc, eid, oid)
    pc.start_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    assert [s["Revision"] for s in _revisions(pc, eid, oid)] == [1]
    # Starting a running job again, or stopping and restarting it with nothing changed: no new revision.
    pc.start_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    pc.stop_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    pc.start_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    assert [s["Revision"] for s in _revisions(pc, eid, oid)] == [1]
    events = [
        e
        for e in emu.backend.events.events()
        if e["detail-type"] == "Engagement Resource Snapshot Created"
        and e["detail"]["resourceSnapshot"]["resourceSnapshotTemplateName"] == TEMPLATE
    ]
    assert [e["detail"]["resourceSnapshot"]["revision"] for e in events] == [1]


def test_running_job_snapshots_each_change_and_stopped_job_does_not(pc, engaged):
    oid, eid = engaged
    job = _create_job(pc, eid, oid)
    pc.start_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    _edit(pc, oid, comment="Not in the view.")  # the view did not change: no revision
    assert [s["Revision"] for s in _revisions(pc, eid, oid)] == [1]
    _edit(pc, oid, next_steps="Second edit.")
    assert [s["Revision"] for s in _revisions(pc, eid, oid)] == [1, 2]
    latest = pc.get_resource_snapshot(
        Catalog="AWS",
        EngagementIdentifier=eid,
        ResourceType="Opportunity",
        ResourceIdentifier=oid,
        ResourceSnapshotTemplateIdentifier=TEMPLATE,
    )
    assert latest["Revision"] == 2
    assert latest["CreatedAt"] is not None
    pc.stop_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    _edit(pc, oid, next_steps="Third edit.")
    assert [s["Revision"] for s in _revisions(pc, eid, oid)] == [1, 2]


def test_stop_needs_running_and_delete_needs_stopped(pc, engaged):
    oid, eid = engaged
    job = _create_job(pc, eid, oid)
    stop = pc.stop_resource_snapshot_job
    assert _error(stop, Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"]) == "ValidationException"
    pc.start_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    delete = pc.delete_resource_snapshot_job
    assert _error(delete, Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"]) == "ConflictException"
    stop(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    delete(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    assert (
        _error(delete, Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"]) == "ResourceNotFoundException"
    )
    jobs = pc.list_resource_snapshot_jobs(Catalog="AWS", EngagementIdentifier=eid)[
        "ResourceSnapshotJobSummaries"
    ]
    assert job["Id"] not in {j["Id"] for j in jobs}


def test_job_reports_its_last_success_and_last_failure(pc, ctl, engaged):
    oid, eid = engaged
    job = _create_job(pc, eid, oid, token="job-monitor")
    fresh = pc.get_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    # Never executed, never failed: neither member is in the answer.
    assert "LastSuccessfulExecutionDate" not in fresh
    assert "LastFailure" not in fresh
    pc.start_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    ran = pc.get_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    assert ran["LastSuccessfulExecutionDate"] >= fresh["CreatedAt"]

    failed = ctl(
        "simulate/snapshot-job-failure", {"job_id": job["Id"], "message": "Role cannot read the opportunity"}
    )
    assert failed["Status"] == "Running"
    got = pc.get_resource_snapshot_job(Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    assert got["LastFailure"] == "Role cannot read the opportunity"
    assert got["Status"] == "Running"
    # The list's summaries carry no execution details (ResourceSnapshotJobSummary: Id, Arn, EngagementId,
    # Status).
    summaries = pc.list_resource_snapshot_jobs(Catalog="AWS", EngagementIdentifier=eid)
    [summary] = [s for s in summaries["ResourceSnapshotJobSummaries"] if s["Id"] == job["Id"]]
    assert "LastFailure" not in summary
    assert "LastSuccessfulExecutionDate" not in summary
