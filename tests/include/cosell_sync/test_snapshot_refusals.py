"""A snapshot-job write Partner Central refuses, against both emulators (real hooks), no Airflow.

What a seller notices: the deal's ``aws_sync_error`` says which write was refused, with the error code and
the rule (never a value), next to other steps' lines; the audit has the failed write; once Partner Central
takes it, the next run applies the write once and the line goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
import requests

from cosell_sync.config import load_config
from cosell_sync.engagements import sync_engagements
from cosell_sync.env import SyncEnv
from cosell_sync.setup import ensure_properties
from cosell_sync.snapshots import sync_snapshots

HEADERS = {"Authorization": "Bearer t"}
TEMPLATE = "PartnerView1"
#: Another step's line on the deal: this step must leave it alone.
OTHER_LINE = "solutions: TOO_MANY_SOLUTIONS: S-1: an opportunity takes at most 10 solutions"
#: A refusal quoting a value, as AWS validation messages do: the value must not reach the deal.
QUOTED = "Value 'Acme secret project' at 'resourceIdentifier' failed to satisfy constraint: not in a state"


class Stack:
    """The env (snapshot template ``PartnerView1``) and the two emulators' URLs."""

    def __init__(self, env: SyncEnv, pc_url: str, hs_url: str) -> None:
        self.env, self.pc_url, self.hs_url = env, pc_url, hs_url

    def pc_control(self, path: str, body: dict[str, Any]) -> Any:
        r = requests.post(f"{self.pc_url}/_emulator/{path}", json=body, timeout=30)
        r.raise_for_status()
        return r.json()

    def calls(self, operation: str) -> int:
        got = requests.get(f"{self.pc_url}/_emulator/calls", timeout=10).json()["by_operation"]
        return int(got.get(operation, 0))

    def jobs(self) -> list[dict[str, Any]]:
        pc = self.env.partner_central
        out = []
        for summary in pc.call("list_resource_snapshot_jobs", Catalog="AWS")["ResourceSnapshotJobSummaries"]:
            job = pc.call(
                "get_resource_snapshot_job", Catalog="AWS", ResourceSnapshotJobIdentifier=summary["Id"]
            )
            if job["ResourceSnapshotTemplateName"] == TEMPLATE:
                out.append(job)
        return out

    def sync_error(self, deal_id: str) -> str:
        r = requests.get(
            f"{self.hs_url}/crm/v3/objects/deals/{deal_id}",
            params={"properties": "aws_sync_error"},
            headers=HEADERS,
            timeout=10,
        )
        return r.json()["properties"].get("aws_sync_error") or ""

    def set_sync_error(self, deal_id: str, text: str) -> None:
        requests.patch(
            f"{self.hs_url}/crm/v3/objects/deals/{deal_id}",
            json={"properties": {"aws_sync_error": text}},
            headers=HEADERS,
            timeout=10,
        ).raise_for_status()

    def audit(self, oid: str, action: str) -> list[dict[str, Any]]:
        return [e for e in self.env.audit.history(oid, limit=None) if e["action"] == action]


@pytest.fixture
def stack(pc_emulator: Any, hubspot_emulator: Any, make_sync_env: Callable[..., SyncEnv]) -> Stack:
    base = load_config()
    cfg = base.model_copy(update={"snapshots": base.snapshots.model_copy(update={"template": TEMPLATE})})
    env = make_sync_env(cfg)
    ensure_properties(cfg, env.hubspot)
    requests.post(f"{pc_emulator.url}/_emulator/quotas", json={"time_scale": 50}, timeout=10)
    requests.post(f"{pc_emulator.url}/_emulator/config", json={"task_delay_ms": 30}, timeout=10)
    return Stack(env, pc_emulator.url, hubspot_emulator.url)


def _run(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "catalog": "AWS", "started_at": "2026-12-06T10:00:00.000Z", "direction": "both"}


def _engaged_deal(stack: Stack) -> tuple[str, str]:
    """(opportunity, deal): an accepted AWS referral linked to an open deal, its engagement found."""
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
    frame = pd.DataFrame(
        {"deal_id": [deal_id], "stage": ["Prospect"]}, index=pd.Index([oid], name="opportunity_id")
    )
    stack.env.baseline.commit(frame, "manual__stage_Prospect")
    sync_engagements(stack.env, _run("manual__eng1"), None, None)
    return oid, deal_id


@pytest.mark.parametrize(
    ("operation", "code", "action"),
    [
        ("CreateResourceSnapshotJob", "ValidationException", "CREATE_SNAPSHOT_JOB"),
        ("StartResourceSnapshotJob", "ResourceNotFoundException", "START_SNAPSHOT_JOB"),
    ],
)
def test_a_refused_job_write_is_on_the_deal_until_a_later_run_applies_it_once(
    stack: Stack, operation: str, code: str, action: str
) -> None:
    oid, deal_id = _engaged_deal(stack)
    stack.set_sync_error(deal_id, OTHER_LINE)
    stack.pc_control("faults/refuse", {"operation": operation, "code": code, "message": QUOTED})

    refused = sync_snapshots(stack.env, _run("manual__r1"))

    assert refused["failed"] == 1
    error = stack.sync_error(deal_id)
    assert OTHER_LINE in error  # another step's line is kept
    [line] = [ln for ln in error.split("\n") if ln.startswith("snapshots: ")]
    assert operation in line
    assert code in line
    assert "failed to satisfy constraint" in line  # the rule ...
    assert "Acme secret project" not in line  # ... never the value
    [failed] = stack.audit(oid, action)
    assert failed["success"] is False
    assert failed["error"]["code"] == code
    assert not any(j["Status"] == "Running" for j in stack.jobs())  # nothing ran

    # Still refused: the next run tries again and the line stays (no second line).
    sync_snapshots(stack.env, _run("manual__r2"))
    assert stack.sync_error(deal_id).count("snapshots: ") == 1
    sent_while_refused = stack.calls(operation)
    assert sent_while_refused == 2

    # Partner Central takes it: the write is applied once, the line goes, the other step's line stays.
    stack.pc_control("faults/refuse", {"operation": operation, "times": 0})
    applied = sync_snapshots(stack.env, _run("manual__r3"))
    assert applied["failed"] == 0
    assert stack.calls(operation) == sent_while_refused + 1
    [job] = stack.jobs()
    assert job["Status"] == "Running"
    assert stack.sync_error(deal_id) == OTHER_LINE
    entries = stack.audit(oid, action)
    assert sorted(e["success"] for e in entries) == [False, False, True]

    # A quiet run: no job write, the line stays gone.
    quiet = sync_snapshots(stack.env, _run("manual__r4"))
    assert quiet["jobs_acted"] == 0
    assert stack.calls(operation) == sent_while_refused + 1
    assert stack.sync_error(deal_id) == OTHER_LINE
