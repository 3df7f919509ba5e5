"""``cosell_sync.snapshots`` against both emulators (real hooks) and moto S3/DynamoDB, no Airflow.

What a seller notices: the opportunity's snapshot job runs while the deal is open, stops when it closes and
is deleted once the engagement is over; a new snapshot revision reaches the deal's properties with one
note; a task retried after dying before it saved its state writes no second note, job call or audit entry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import requests

from cosell_sync.config import load_config
from cosell_sync.engagements import sync_engagements
from cosell_sync.env import SyncEnv
from cosell_sync.errors import NotFoundError, ParamError
from cosell_sync.setup import ensure_properties
from cosell_sync.snapshot_compare import check_revision, compare_snapshot, differences
from cosell_sync.snapshots import (
    STATE_NAME,
    check_params,
    deal_properties,
    snapshot_manually,
    sync_snapshots,
    wanted_status,
)
from cosell_sync.storage import StepState
from tests.hubspot_reads import deal_notes

HEADERS = {"Authorization": "Bearer t"}
TEMPLATE = "PartnerView1"
JOB_OPS = (
    "CreateResourceSnapshotJob",
    "StartResourceSnapshotJob",
    "StopResourceSnapshotJob",
    "DeleteResourceSnapshotJob",
)


class Stack:
    """The env (its config's snapshot template: ``PartnerView1``) and the two emulators' URLs."""

    def __init__(self, env: SyncEnv, pc_url: str, hs_url: str) -> None:
        self.env, self.pc_url, self.hs_url = env, pc_url, hs_url

    def pc_control(self, path: str, body: dict[str, Any]) -> Any:
        r = requests.post(f"{self.pc_url}/_emulator/{path}", json=body, timeout=30)
        r.raise_for_status()
        return r.json()

    def calls(self) -> dict[str, int]:
        got = requests.get(f"{self.pc_url}/_emulator/calls", timeout=10).json()["by_operation"]
        return {op: int(got.get(op, 0)) for op in JOB_OPS}

    def job(self) -> dict[str, Any] | None:
        pc = self.env.partner_central
        for summary in pc.call("list_resource_snapshot_jobs", Catalog="AWS")["ResourceSnapshotJobSummaries"]:
            job = pc.call(
                "get_resource_snapshot_job", Catalog="AWS", ResourceSnapshotJobIdentifier=summary["Id"]
            )
            if job["ResourceSnapshotTemplateName"] == TEMPLATE:
                return job
        return None

    def deal(self, deal_id: str) -> dict[str, Any]:
        r = requests.get(
            f"{self.hs_url}/crm/v3/objects/deals/{deal_id}",
            params={
                "properties": "aws_total_resources,aws_last_resource_upload,aws_partner_resources,"
                "aws_snapshot_job_status,aws_snapshot_job_last_success,aws_snapshot_job_last_failure"
            },
            headers=HEADERS,
            timeout=10,
        )
        return r.json()["properties"]

    def notes(self, deal_id: str) -> list[str]:
        return deal_notes(self.hs_url, deal_id)

    def snapshot_notes(self, deal_id: str) -> list[str]:
        return [n for n in self.notes(deal_id) if "New resource snapshot" in n]

    def audit_actions(self, oid: str) -> list[str]:
        return sorted(e["action"] for e in self.env.audit.history(oid) if "SNAPSHOT" in e["action"])


@pytest.fixture
def stack(pc_emulator: Any, hubspot_emulator: Any, make_sync_env: Callable[..., SyncEnv]) -> Stack:
    base = load_config()
    cfg = base.model_copy(update={"snapshots": base.snapshots.model_copy(update={"template": TEMPLATE})})
    env = make_sync_env(cfg)
    ensure_properties(cfg, env.hubspot)
    requests.post(f"{pc_emulator.url}/_emulator/quotas", json={"time_scale": 50}, timeout=10)
    requests.post(f"{pc_emulator.url}/_emulator/config", json={"task_delay_ms": 30}, timeout=10)
    return Stack(env, pc_emulator.url, hubspot_emulator.url)


def _run(run_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "catalog": "AWS",
        "started_at": "2026-12-06T10:00:00.000Z",
        "direction": "both",
        **extra,
    }


def _engaged_deal(stack: Stack, stage: str = "Prospect") -> tuple[str, str, str]:
    """(opportunity, deal, engagement): an accepted AWS referral linked to a deal, engagement found."""
    pc = stack.env.partner_central
    made = stack.pc_control("simulate/aws-referral", {"catalog": "AWS"})
    task = pc.call(
        "start_engagement_by_accepting_invitation_task",
        Catalog="AWS",
        ClientToken="accept-1",
        Identifier=made["invitation_id"],
    )
    deadline = time.monotonic() + 10
    while True:
        [summary] = pc.call(
            "list_engagement_by_accepting_invitation_tasks", Catalog="AWS", TaskIdentifier=[task["TaskId"]]
        )["TaskSummaries"]
        if summary["TaskStatus"] == "COMPLETE" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    oid = str(summary["OpportunityId"])
    r = requests.post(
        f"{stack.hs_url}/crm/v3/objects/deals",
        json={"properties": {"dealname": "Referral", "aws_opportunity_id": oid}},
        headers=HEADERS,
        timeout=10,
    )
    deal_id = str(r.json()["id"])
    _set_stage(stack, oid, deal_id, stage)
    sync_engagements(stack.env, _run("manual__eng1"), None, None)
    return oid, deal_id, str(made["engagement_id"])


def _set_stage(stack: Stack, oid: str, deal_id: str, stage: str) -> None:
    """The stage both sides last agreed on, as a commit records it."""
    frame = pd.DataFrame(
        {"deal_id": [deal_id], "stage": [stage]}, index=pd.Index([oid], name="opportunity_id")
    )
    stack.env.baseline.commit(frame, f"manual__stage_{stage.replace(' ', '_')}")


def test_pure_rules() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    long_ago = (now - timedelta(days=31)).isoformat()
    assert wanted_status(True, "Qualified", None, now, 30) == "Running"
    assert wanted_status(True, "Closed Lost", now.isoformat(), now, 30) == "Stopped"
    assert wanted_status(True, "Launched", long_ago, now, 30) == "Deleted"
    assert wanted_status(False, "Qualified", None, now, 30) == "Deleted"
    revs = [
        {
            "arn": "a1",
            "template": "T1",
            "revision": 1,
            "created_at": "2026-12-01T00:00:00Z",
            "created_by": "1",
        },
        {
            "arn": "a2",
            "template": "T1",
            "revision": 2,
            "created_at": "2026-12-02T00:00:00Z",
            "created_by": "1",
        },
    ]
    props = deal_properties(revs, 5, 1)
    assert props["aws_total_resources"] == "5"
    assert props["aws_last_resource_upload"] == "2026-12-02T00:00:00Z"
    assert [r["revision"] for r in json.loads(props["aws_partner_resources"])] == [2]
    with pytest.raises(ParamError, match="exactly one of deal_id or opportunity_id"):
        check_params("1", "O1")
    with pytest.raises(ParamError, match="opportunity_id: must be O"):
        check_params("", "opp-1")


def test_the_job_follows_the_deal_and_a_new_revision_reaches_it_once(stack: Stack) -> None:
    oid, deal_id, eid = _engaged_deal(stack)

    first = sync_snapshots(stack.env, _run("manual__s1"))
    # Open deal: the job is made and started; its first revision and AWS's are shown, without a note.
    assert stack.calls() == {
        "CreateResourceSnapshotJob": 1,
        "StartResourceSnapshotJob": 1,
        "StopResourceSnapshotJob": 0,
        "DeleteResourceSnapshotJob": 0,
    }
    job = stack.job()
    assert job is not None
    assert job["Status"] == "Running"
    assert job["EngagementId"] == eid
    deal = stack.deal(deal_id)
    listed = json.loads(deal["aws_partner_resources"])
    assert {(r["template"], r["revision"]) for r in listed} == {("AWSOpportunitySummary", 1), (TEMPLATE, 1)}
    assert deal["aws_total_resources"] == "2"
    assert deal["aws_last_resource_upload"]
    assert first["notes"] == 0
    assert stack.snapshot_notes(deal_id) == []
    assert stack.audit_actions(oid) == ["CREATE_SNAPSHOT_JOB", "START_SNAPSHOT_JOB"]

    # Nothing changed: no job call, no note.
    quiet = sync_snapshots(stack.env, _run("manual__s2"))
    assert (quiet["jobs_acted"], quiet["notes"]) == (0, 0)

    # AWS edits the next steps: both running jobs take a revision; the event names the engagement.
    stack.pc_control(
        "simulate/aws-update", {"identifier": oid, "LifeCycle": {"NextSteps": "Workshop on Friday"}}
    )
    state = StepState(stack.env.snapshots, "AWS", STATE_NAME)
    before, _ = state.load()
    out = sync_snapshots(stack.env, _run("manual__s3"), engagement_ids=[eid])
    assert out["new_revisions"] == out["notes"] == 2
    notes = stack.snapshot_notes(deal_id)
    assert len(notes) == 2
    assert any(f"template {TEMPLATE}, revision 2" in n for n in notes)
    assert stack.deal(deal_id)["aws_total_resources"] == "4"

    # The task dies after its writes, before saving its state; the retry writes nothing twice.
    state.save_frame(before)
    again = sync_snapshots(stack.env, _run("manual__s3"), engagement_ids=[eid])
    assert again["notes"] == 2  # counted from the checkpoint, not created again
    assert len(stack.snapshot_notes(deal_id)) == 2

    # The deal is closed lost: the job stops (once, also across a retry), and is kept.
    _set_stage(stack, oid, deal_id, "Closed Lost")
    before, _ = state.load()
    sync_snapshots(stack.env, _run("manual__s4"))
    state.save_frame(before)
    sync_snapshots(stack.env, _run("manual__s4"))
    assert stack.calls()["StopResourceSnapshotJob"] == 1
    assert stack.job()["Status"] == "Stopped"
    assert stack.deal(deal_id)["aws_snapshot_job_status"] == "Stopped"

    # The engagement is over (closed longer than delete_after_days): the job is deleted.
    cfg = stack.env.config
    stack.env.config = cfg.model_copy(
        update={"snapshots": cfg.snapshots.model_copy(update={"delete_after_days": 0})}
    )
    sync_snapshots(stack.env, _run("manual__s5"))
    assert stack.job() is None
    assert stack.deal(deal_id)["aws_snapshot_job_status"] == "Deleted"
    assert stack.calls() == {
        "CreateResourceSnapshotJob": 1,
        "StartResourceSnapshotJob": 1,
        "StopResourceSnapshotJob": 1,
        "DeleteResourceSnapshotJob": 1,
    }
    assert stack.audit_actions(oid) == [
        "CREATE_SNAPSHOT_JOB",
        "DELETE_SNAPSHOT_JOB",
        "START_SNAPSHOT_JOB",
        "STOP_SNAPSHOT_JOB",
    ]


def test_the_job_aws_started_is_adopted_not_duplicated(stack: Stack) -> None:
    cfg = stack.env.config
    stack.env.config = cfg.model_copy(
        update={"snapshots": cfg.snapshots.model_copy(update={"template": "AWSOpportunitySummary"})}
    )
    oid, deal_id, _ = _engaged_deal(stack)
    out = sync_snapshots(stack.env, _run("manual__a1"))
    assert out["jobs_acted"] == 0
    assert stack.calls()["CreateResourceSnapshotJob"] == 0
    assert json.loads(stack.deal(deal_id)["aws_partner_resources"])[0]["revision"] == 1
    assert stack.audit_actions(oid) == []


def test_cosell_snapshot_makes_one_revision_per_run(stack: Stack) -> None:
    oid, deal_id, _ = _engaged_deal(stack)
    sync_snapshots(stack.env, _run("manual__m0"))
    with pytest.raises(NotFoundError, match="no HubSpot deal linked"):
        snapshot_manually(stack.env, _run("manual__m1"), "", "O424242", dry_run=False)
    shown = snapshot_manually(stack.env, _run("manual__m1"), deal_id, "", dry_run=True)
    assert (shown["opportunity_id"], shown["revision"]) == (oid, None)
    made = snapshot_manually(stack.env, _run("manual__m1"), "", oid, dry_run=False)
    assert made["revision"] == 2
    assert made["notes"] == 1
    # The same run retried: the ClientToken gives back the same revision; no second note.
    again = snapshot_manually(stack.env, _run("manual__m1"), "", oid, dry_run=False)
    assert again["revision"] == 2
    assert len(stack.snapshot_notes(deal_id)) == 1
    assert "CREATE_RESOURCE_SNAPSHOT" in stack.audit_actions(oid)


def test_a_job_deleted_outside_the_sync_is_replaced_at_the_full_refresh(stack: Stack) -> None:
    _engaged_deal(stack)
    sync_snapshots(stack.env, _run("manual__d1"))
    job = stack.job()
    assert job is not None
    pc = stack.env.partner_central
    pc.call("stop_resource_snapshot_job", Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])
    pc.call("delete_resource_snapshot_job", Catalog="AWS", ResourceSnapshotJobIdentifier=job["Id"])

    # An incremental run with nothing changed does not look (no job call at all) ...
    quiet = sync_snapshots(stack.env, _run("manual__d2"))
    assert quiet["api_calls"].get("ListResourceSnapshotJobs", 0) == 0
    # ... the full refresh finds it gone and makes a new one (a new ClientToken: not the deleted job back).
    sync_snapshots(stack.env, _run("manual__d3", mode="full"))
    again = stack.job()
    assert again is not None
    assert again["Id"] != job["Id"]
    assert again["Status"] == "Running"


def test_the_jobs_status_success_and_failure_reach_the_deal_at_a_bounded_cost(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    oid, deal_id, _ = _engaged_deal(stack)
    first = sync_snapshots(stack.env, _run("manual__j1"))
    deal = stack.deal(deal_id)
    assert deal["aws_snapshot_job_status"] == "Running"
    assert deal["aws_snapshot_job_last_success"]
    assert not deal["aws_snapshot_job_last_failure"]
    assert first["api_calls"]["GetResourceSnapshotJob"] >= 1

    # Nothing changed: no job read at all, however many runs.
    quiet = sync_snapshots(stack.env, _run("manual__j2"))
    assert quiet["api_calls"].get("GetResourceSnapshotJob", 0) == 0

    # The job fails on AWS's side; nothing the sync sees changes, so the next run does not read it yet ...
    job = stack.job()
    assert job is not None
    failure = "Role cannot read opportunity for customer AnyCompany"
    stack.pc_control("simulate/snapshot-job-failure", {"job_id": job["Id"], "message": failure})
    still = sync_snapshots(stack.env, _run("manual__j3"))
    assert still["api_calls"].get("GetResourceSnapshotJob", 0) == 0
    assert not stack.deal(deal_id)["aws_snapshot_job_last_failure"]

    # ... once job_details_hours have passed, one read shows it on the deal, and only on the deal.
    cfg = stack.env.config
    stack.env.config = cfg.model_copy(
        update={"snapshots": cfg.snapshots.model_copy(update={"job_details_hours": 1e-9})}
    )
    with caplog.at_level("DEBUG"):
        due = sync_snapshots(stack.env, _run("manual__j4"))
    assert due["api_calls"]["GetResourceSnapshotJob"] == 1
    assert due["jobs_failing"] == 1
    assert stack.deal(deal_id)["aws_snapshot_job_last_failure"] == failure
    assert stack.deal(deal_id)["aws_snapshot_job_status"] == "Running"
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("cosell"))
    assert "AnyCompany" not in ours
    assert "aws_snapshot_job_last_failure" in ours

    # Read again when due, but the deal is written only when a value changed.
    again = sync_snapshots(stack.env, _run("manual__j5"))
    assert again["api_calls"]["GetResourceSnapshotJob"] == 1
    assert again["deals_written"] == 0

    # An opportunity change runs the job: it is read in that run, its new success shown.
    stack.env.config = cfg
    before = stack.deal(deal_id)["aws_snapshot_job_last_success"]
    time.sleep(0.05)
    stack.pc_control("simulate/aws-update", {"identifier": oid, "LifeCycle": {"NextSteps": "Call AWS"}})
    changed = sync_snapshots(stack.env, _run("manual__j6"), engagement_ids=[job["EngagementId"]])
    assert changed["new_revisions"] >= 1
    assert changed["api_calls"]["GetResourceSnapshotJob"] == 1
    assert stack.deal(deal_id)["aws_snapshot_job_last_success"] > before


@pytest.mark.parametrize(
    ("snapshot", "now", "fields"),
    [
        pytest.param({"A": {"B": 1}}, {"A": {"B": 1}}, [], id="same"),
        pytest.param({"A": {"B": 1}}, {"A": {"B": 2}}, ["A.B"], id="changed"),
        pytest.param({"A": {"B": 1}}, {"A": {}}, ["A.B"], id="removed"),
        pytest.param({"L": [{"E": "x"}]}, {"L": [{"E": "x"}, {"E": "y"}]}, ["L[1].E"], id="list-grew"),
        pytest.param({"L": []}, {}, [], id="empty-list-is-no-value"),
    ],
)
def test_differences_name_each_changed_path(snapshot: Any, now: Any, fields: list[str]) -> None:
    assert [d["field"] for d in differences(snapshot, now)] == fields


def test_compare_revision_param() -> None:
    assert check_revision(None) == check_revision(0) == 0
    assert check_revision("3") == 3
    with pytest.raises(ParamError, match="compare_revision"):
        check_revision(-1)


def test_a_snapshot_revision_compares_with_the_opportunity_now(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    oid, deal_id, _ = _engaged_deal(stack)
    sync_snapshots(stack.env, _run("manual__c0"))  # the PartnerView1 job: revision 1
    stack.pc_control(
        "simulate/aws-update", {"identifier": oid, "LifeCycle": {"NextSteps": "Pricing review with CFO"}}
    )
    assert compare_snapshot(stack.env, _run("manual__c1"), deal_id, "", 0) == {
        "skipped": "compare_revision is 0: no comparison"
    }
    with caplog.at_level("INFO", logger="cosell_sync"):
        out = compare_snapshot(stack.env, _run("manual__c1"), deal_id, "", 1)
    assert out["fields"] == ["Lifecycle.NextSteps"]
    assert out["fields_compared"] > 10
    report = stack.env.snapshots.get_json(out["key"])
    assert out["key"].endswith("runs/AWS/manual__c1/snapshot-compare.json")
    assert report["revision"] == 1
    [diff] = report["differences"]
    assert diff["now"] == "Pricing review with CFO"
    assert diff["snapshot"] != diff["now"]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("cosell"))
    assert "Lifecycle.NextSteps" in ours
    assert "Pricing review" not in ours

    # The job took revision 2 with the edit: it holds what the opportunity holds now.
    latest = compare_snapshot(stack.env, _run("manual__c2"), "", oid, 2)
    assert (latest["differences"], latest["fields"]) == (0, [])
    with pytest.raises(NotFoundError, match="no revision 9 of template PartnerView1"):
        compare_snapshot(stack.env, _run("manual__c3"), deal_id, "", 9)
