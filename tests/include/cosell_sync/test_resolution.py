"""``cosell_sync.resolution.resolve_conflict`` against both emulators (real hooks) and moto S3/DynamoDB.

A person's decision on a manual conflict must land the *recorded* winning value in the other system, move
the field's baseline, audit it, complete the owner's task, and only then close the conflict; a decision
that cannot be written now must leave everything (and the conflict) as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
import requests

from cosell_sync.config import SyncConfig, load_config
from cosell_sync.env import SyncEnv
from cosell_sync.errors import ConflictError
from cosell_sync.hubspot_api import HubSpotGateway
from cosell_sync.resolution import (
    USE_HUBSPOT_VALUE,
    USE_PARTNER_CENTRAL_VALUE,
    ResolutionBlockedError,
    resolve_conflict,
)
from cosell_sync.setup import ensure_properties
from cosell_sync.writers import HubSpotWriter

PC_CONN = "AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT"
HS_CONN = "AIRFLOW_CONN_HUBSPOT_DEFAULT"
USER = "hs-owner-4711"
RUN_TS = datetime(2026, 2, 18, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def cfg() -> SyncConfig:
    return load_config()


class Stack:
    """The env plus helpers to read both emulators."""

    def __init__(self, env: SyncEnv, pc_url: str, hs_url: str) -> None:
        self.env, self.pc_url, self.hs_url = env, pc_url, hs_url

    def opportunity(self, oid: str) -> dict[str, Any]:
        return self.env.partner_central.call("get_opportunity", Catalog="AWS", Identifier=oid)

    def deal(self, deal_id: str, *props: str) -> dict[str, Any]:
        r = requests.get(
            f"{self.hs_url}/crm/v3/objects/deals/{deal_id}",
            params={"properties": ",".join(props)},
            headers={"Authorization": "Bearer t"},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()["properties"]

    def task_status(self, task_id: str) -> str:
        r = requests.get(
            f"{self.hs_url}/crm/v3/objects/tasks/{task_id}",
            params={"properties": "hs_task_status"},
            headers={"Authorization": "Bearer t"},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()["properties"]["hs_task_status"]

    def writes(self) -> tuple[list[str], list[str]]:
        """(Partner Central write operations, HubSpot write endpoints) since the last reset."""
        pc = requests.get(f"{self.pc_url}/_emulator/calls", timeout=10).json()["by_operation"]
        hs = requests.get(f"{self.hs_url}/_emulator/calls", timeout=10).json()["by_endpoint"]
        return (
            sorted(k for k in pc if not k.startswith(("Get", "List"))),
            sorted(e for e in hs if not e.startswith("GET") and "read" not in e and "search" not in e),
        )

    def reset_calls(self) -> None:
        requests.delete(f"{self.pc_url}/_emulator/calls", timeout=10)
        requests.delete(f"{self.hs_url}/_emulator/calls", timeout=10)

    def with_review(self, status: str) -> str:
        """A seeded opportunity in the given review state (the seeded book holds every state)."""
        for oid in self.ids:
            if self.opportunity(oid)["LifeCycle"]["ReviewStatus"] == status:
                return oid
        raise AssertionError(f"no seeded opportunity is {status!r}")

    def conflict(self, oid: str, pc_value: str, hs_value: str) -> dict[str, Any]:
        """A linked deal, a baseline row and a pending next_steps conflict with its HubSpot task."""
        r = requests.post(
            f"{self.hs_url}/crm/v3/objects/deals",
            headers={"Authorization": "Bearer t"},
            json={
                "properties": {
                    "dealname": f"Deal of {oid}",
                    "aws_opportunity_id": oid,
                    "aws_next_steps": hs_value,
                    "aws_sync_enabled": "true",
                }
            },
            timeout=10,
        )
        r.raise_for_status()
        deal_id = str(r.json()["id"])
        base = pd.DataFrame(
            [{"deal_id": deal_id, "next_steps": "the common ancestor"}],
            index=pd.Index([oid], name="opportunity_id"),
            dtype=object,
        )
        self.env.baseline.commit(base, "scheduled__0")
        [item] = self.env.conflicts.open(
            [
                {
                    "opportunity_id": oid,
                    "deal_id": deal_id,
                    "field": "next_steps",
                    "partner_central_value": pc_value,
                    "hubspot_value": hs_value,
                    "partner_central_timestamp": "2026-02-18T10:00:00.000+00:00",
                    "hubspot_timestamp": "2026-02-18T10:00:01.000+00:00",
                    "detected_at": RUN_TS,
                }
            ],
            run_id="scheduled__1",
        )
        writer = HubSpotWriter(self.env.config, HubSpotGateway(self.env.hubspot))
        tasks = writer.create_conflict_tasks([{**item, "deal_id": deal_id}])
        return self.env.conflicts.set_task(item["conflict_id"], tasks[item["conflict_id"]])

    ids: list[str] = []


@pytest.fixture
def stack(
    cfg: SyncConfig, pc_emulator: Any, hubspot_emulator: Any, make_sync_env: Callable[..., SyncEnv]
) -> Stack:
    env = make_sync_env(cfg)
    ensure_properties(cfg, env.hubspot)
    seeded = requests.post(
        f"{pc_emulator.url}/_emulator/seed",
        json={"opportunities": 20, "seed": 3, "catalog": "AWS"},
        timeout=30,
    )
    seeded.raise_for_status()
    out = Stack(env, pc_emulator.url, hubspot_emulator.url)
    out.ids = sorted(seeded.json()["opportunity_ids"])
    return out


def resolve(stack: Stack, conflict: dict[str, Any], resolution: str, **kw: Any) -> dict[str, Any]:
    return resolve_conflict(
        stack.env,
        conflict["conflict_id"],
        resolution,
        kw.pop("reason", "confirmed with the customer"),
        kw.pop("user", USER),
        kw.pop("run_id", "manual__resolve1"),
        run_timestamp=RUN_TS,
        **kw,
    )


def resolved_entries(stack: Stack, oid: str) -> list[dict[str, Any]]:
    return [e for e in stack.env.audit.history(oid, limit=50) if e["action"] == "CONFLICT_RESOLVED"]


def test_use_partner_central_value_writes_hubspot_and_closes_the_conflict(stack: Stack) -> None:
    oid = stack.with_review("Approved")  # a HubSpot write does not depend on the review state
    conflict = stack.conflict(oid, "PC says demo", "HS says call")
    stack.reset_calls()
    out = resolve(stack, conflict, USE_PARTNER_CENTRAL_VALUE, reason="asked jane@example.com")
    assert (out["status"], out["written_to"], out["other_pending"]) == ("resolved", "hubspot", 0)
    deal = stack.deal(conflict["deal_id"], "aws_next_steps", "aws_conflict_status")
    assert deal == {**deal, "aws_next_steps": "PC says demo", "aws_conflict_status": "Resolved"}
    assert stack.task_status(conflict["task_id"]) == "COMPLETED"
    pc_writes, _ = stack.writes()
    assert pc_writes == []  # Partner Central already holds its own value
    assert stack.env.baseline.get(oid)["next_steps"] == "PC says demo"
    stored = stack.env.conflicts.get(conflict["conflict_id"])
    assert (stored["status"], stored["resolution"], stored["resolved_by"]) == (
        "RESOLVED",
        USE_PARTNER_CENTRAL_VALUE,
        USER,
    )
    assert stack.env.conflicts.frozen_fields() == set()
    [entry] = resolved_entries(stack, oid)
    assert entry["changes"] == {"next_steps": {"old": "HS says call", "new": "PC says demo"}}
    assert entry["user"] == USER
    assert entry["metadata"]["reason"] == "asked [email removed]"


def test_use_hubspot_value_writes_the_recorded_value_to_partner_central(stack: Stack) -> None:
    oid = stack.with_review("Pending Submission")
    conflict = stack.conflict(oid, "PC says demo", "HS says call")
    # HubSpot moved on after the task was shown: the person decided on the recorded value, not this one.
    HubSpotGateway(stack.env.hubspot).batch_update(
        "deals", {conflict["deal_id"]: {"aws_next_steps": "later"}}
    )
    out = resolve(stack, conflict, USE_HUBSPOT_VALUE)
    assert (out["status"], out["written_to"]) == ("resolved", "partner_central")
    opp = stack.opportunity(oid)
    assert opp["LifeCycle"]["NextSteps"] == "HS says call"
    row = stack.env.baseline.get(oid)
    assert row["next_steps"] == "HS says call"
    assert row["pc_last_modified"]  # the write's stamp: the next extract does not see our own write as news
    assert stack.env.conflicts.get(conflict["conflict_id"])["status"] == "RESOLVED"
    assert stack.deal(conflict["deal_id"], "aws_conflict_status")["aws_conflict_status"] == "Resolved"


def test_blocked_by_review_state_writes_nothing_and_stays_pending(stack: Stack) -> None:
    oid = stack.with_review("In review")
    conflict = stack.conflict(oid, "PC says demo", "HS says call")
    before = stack.opportunity(oid)
    stack.reset_calls()
    with pytest.raises(ResolutionBlockedError, match="REVIEW_IN_PROGRESS") as caught:
        resolve(stack, conflict, USE_HUBSPOT_VALUE)
    assert "stays PENDING" in caught.value.message
    assert stack.writes() == ([], [])
    assert stack.opportunity(oid)["LifeCycle"].get("NextSteps") == before["LifeCycle"].get("NextSteps")
    assert stack.env.conflicts.get(conflict["conflict_id"])["status"] == "PENDING"
    assert stack.env.baseline.get(oid)["next_steps"] == "the common ancestor"
    assert resolved_entries(stack, oid) == []
    assert stack.task_status(conflict["task_id"]) != "COMPLETED"


def test_a_retried_decision_is_a_no_op_and_a_reversal_is_refused(stack: Stack) -> None:
    oid = stack.with_review("Approved")
    conflict = stack.conflict(oid, "PC says demo", "HS says call")
    resolve(stack, conflict, USE_PARTNER_CENTRAL_VALUE)
    stack.reset_calls()
    again = resolve(stack, conflict, USE_PARTNER_CENTRAL_VALUE, run_id="manual__resolve2")
    assert (again["status"], again["api_calls"]) == ("already_resolved", {})
    with pytest.raises(ConflictError, match=USE_PARTNER_CENTRAL_VALUE):
        resolve(stack, conflict, USE_HUBSPOT_VALUE, run_id="manual__resolve3")
    assert stack.writes() == ([], [])
    assert len(resolved_entries(stack, oid)) == 1
    assert stack.deal(conflict["deal_id"], "aws_next_steps")["aws_next_steps"] == "PC says demo"


def test_the_deal_stays_pending_while_another_conflict_on_it_waits(stack: Stack) -> None:
    oid = stack.with_review("Approved")
    conflict = stack.conflict(oid, "PC says demo", "HS says call")
    stack.env.conflicts.open(
        [
            {
                "opportunity_id": oid,
                "deal_id": conflict["deal_id"],
                "field": "expected_spend_amount",
                "partner_central_value": "100",
                "hubspot_value": "200",
                "partner_central_timestamp": "2026-02-18T10:00:00.000+00:00",
                "hubspot_timestamp": "2026-02-18T10:00:01.000+00:00",
                "detected_at": RUN_TS,
            }
        ]
    )
    out = resolve(stack, conflict, USE_PARTNER_CENTRAL_VALUE)
    assert out["other_pending"] == 1
    assert stack.deal(conflict["deal_id"], "aws_conflict_status")["aws_conflict_status"] == "Pending"
    assert stack.task_status(conflict["task_id"]) == "COMPLETED"
    assert stack.env.conflicts.frozen_fields() == {(oid, "expected_spend_amount")}


@pytest.mark.parametrize(
    ("resolution", "user", "match"),
    [
        pytest.param("USE_NEWEST", USER, "unknown resolution", id="unknown-resolution"),
        pytest.param(USE_HUBSPOT_VALUE, "jane.doe@example.com", "user id", id="email-as-user"),
        pytest.param(USE_HUBSPOT_VALUE, "  ", "user id", id="blank-user"),
    ],
)
def test_invalid_decisions_are_refused_before_anything_is_touched(
    stack: Stack, resolution: str, user: str, match: str
) -> None:
    oid = stack.with_review("Pending Submission")
    conflict = stack.conflict(oid, "PC says demo", "HS says call")
    stack.reset_calls()
    with pytest.raises(ValueError, match=match):
        resolve(stack, conflict, resolution, user=user)
    assert stack.writes() == ([], [])
    assert stack.env.conflicts.get(conflict["conflict_id"])["status"] == "PENDING"
