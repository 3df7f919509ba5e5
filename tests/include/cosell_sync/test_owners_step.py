"""``cosell_sync.owners.sync_owners`` against both emulators (real hooks) and moto S3/DynamoDB, no Airflow.

What a seller notices: a deal seen for the first time keeps its Partner Central owner; an owner change is
sent once, with its note once, also when the step's task is retried after dying before it saved its
state; an owner without an e-mail fails only its deal; a deal put back to its synced owner is settled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
import requests

from cosell_sync.config import load_config
from cosell_sync.env import SyncEnv
from cosell_sync.owners import STATE_NAME, sync_owners
from cosell_sync.setup import ensure_properties
from cosell_sync.storage import StepState
from tests.hubspot_reads import deal_notes

HEADERS = {"Authorization": "Bearer t"}


class Stack:
    """The env and the two emulators' URLs."""

    def __init__(self, env: SyncEnv, pc_url: str, hs_url: str) -> None:
        self.env, self.pc_url, self.hs_url = env, pc_url, hs_url

    def owner(self, first: str, last: str, email: str | None) -> str:
        body = {"firstName": first, "lastName": last, **({"email": email} if email else {})}
        r = requests.post(f"{self.hs_url}/_emulator/owners", json=body, timeout=10)
        r.raise_for_status()
        return str(r.json()["id"])

    def set_owner(self, deal_id: str, owner_id: str) -> None:
        r = requests.patch(
            f"{self.hs_url}/crm/v3/objects/deals/{deal_id}",
            json={"properties": {"hubspot_owner_id": owner_id}},
            headers=HEADERS,
            timeout=10,
        )
        r.raise_for_status()

    def deal(self, deal_id: str) -> dict[str, Any]:
        r = requests.get(
            f"{self.hs_url}/crm/v3/objects/deals/{deal_id}",
            params={"properties": "aws_assigned_partner_user,aws_sync_error,hubspot_owner_id"},
            headers=HEADERS,
            timeout=10,
        )
        return r.json()["properties"]

    def notes(self, deal_id: str) -> list[str]:
        return deal_notes(self.hs_url, deal_id)

    def assign_calls(self) -> int:
        calls = requests.get(f"{self.pc_url}/_emulator/calls", timeout=10).json()
        return int(calls["by_operation"].get("AssignOpportunity", 0))

    def team(self, oid: str) -> list[dict[str, Any]]:
        got = self.env.partner_central.call("get_opportunity", Catalog="AWS", Identifier=oid)
        return got.get("OpportunityTeam") or []


@pytest.fixture
def stack(pc_emulator: Any, hubspot_emulator: Any, make_sync_env: Callable[..., SyncEnv]) -> Stack:
    cfg = load_config()
    env = make_sync_env(cfg)
    ensure_properties(cfg, env.hubspot)
    requests.post(f"{pc_emulator.url}/_emulator/quotas", json={"time_scale": 50}, timeout=10)
    return Stack(env, pc_emulator.url, hubspot_emulator.url)


def _linked_deals(stack: Stack, count: int, rejected: int = 0) -> dict[str, str]:
    """``count`` opportunities that take an assignment and ``rejected`` Rejected ones, each with a deal."""
    seeded = requests.post(
        f"{stack.pc_url}/_emulator/seed", json={"opportunities": 12, "seed": 5, "catalog": "AWS"}, timeout=30
    ).json()["opportunity_ids"]
    status = {
        o: stack.env.partner_central.call("get_opportunity", Catalog="AWS", Identifier=o)["LifeCycle"].get(
            "ReviewStatus"
        )
        for o in seeded
    }
    chosen = [o for o in seeded if status[o] != "Rejected"][:count]
    chosen += [o for o in seeded if status[o] == "Rejected"][:rejected]
    links: dict[str, str] = {}
    for oid in chosen:
        r = requests.post(
            f"{stack.hs_url}/crm/v3/objects/deals",
            json={"properties": {"dealname": f"Deal {oid}", "aws_opportunity_id": oid}},
            headers=HEADERS,
            timeout=10,
        )
        r.raise_for_status()
        links[r.json()["id"]] = oid
    frame = pd.DataFrame(
        {"deal_id": list(links)}, index=pd.Index(list(links.values()), name="opportunity_id")
    )
    stack.env.baseline.commit(frame, "manual__seed")
    return links


def _run(run_id: str) -> dict[str, Any]:
    return {"run_id": run_id, "catalog": "AWS", "started_at": "2026-12-06T10:00:00.000Z", "direction": "both"}


def test_first_sight_records_then_a_change_is_sent_once_even_across_a_retried_task(stack: Stack) -> None:
    links = _linked_deals(stack, 3, rejected=1)
    d1, d2, d3, d4 = links  # d4: its opportunity is Rejected
    first = sync_owners(stack.env, _run("manual__r1"))
    assert (first["recorded"], first["assigned"]) == (4, 0)
    assert stack.assign_calls() == 0  # first sight: Partner Central keeps its owner

    dana = stack.owner("Dana", "Lee", "dana.lee@partner.example")
    nomail = stack.owner("No", "Mail", None)
    stack.set_owner(d1, dana)
    stack.set_owner(d2, nomail)
    stack.set_owner(d4, dana)
    state = StepState(stack.env.snapshots, "AWS", STATE_NAME)
    before, _ = state.load()

    out = sync_owners(stack.env, _run("manual__r2"))

    assert (out["assigned"], out["failed"]) == (1, 2)
    # One batch read of the deals, one owners page, one batch update, one notes batch; a write per change.
    assert out["api_calls"] == {
        "AssignOpportunity": 2,
        "batch_read:deals": 1,
        "owners": 1,
        "batch_update:deals": 1,
        "batch_create:notes": 1,
    }
    assert [m["Email"] for m in stack.team(links[d1])] == ["dana.lee@partner.example"]
    assert stack.deal(d1)["aws_assigned_partner_user"] == "dana.lee@partner.example"
    assert "owner email: missing" in stack.deal(d2)["aws_sync_error"]
    assert not stack.deal(d3).get("aws_sync_error")
    # Partner Central refuses a Rejected opportunity's assignment: a clear error, queued, audited.
    refused = stack.deal(d4)["aws_sync_error"]
    assert refused.startswith("Owner change not sent to Partner Central (AssignOpportunity): ")
    assert "dana" not in refused.lower()
    queued = {i["opportunity_id"]: i for i in stack.env.retry.list()}
    assert queued[links[d4]]["reason"] == queued[links[d2]]["reason"] == "ASSIGN_FAILED"
    [entry] = [e for e in stack.env.audit.history(links[d4]) if e["action"] == "ASSIGN_OPPORTUNITY"]
    assert entry["success"] is False
    assert len([n for n in stack.notes(d1) if "Opportunity reassigned to Dana Lee" in n]) == 1
    assert stack.assign_calls() == 2  # the good one and the refused one

    # The task dies after its writes and before saving its state; its retry sends nothing twice.
    state.save_frame(before)
    again = sync_owners(stack.env, _run("manual__r2"))
    assert again["assigned"] == 1
    assert stack.assign_calls() == 3  # only the refused one is tried again
    assert len([n for n in stack.notes(d1) if "Opportunity reassigned" in n]) == 1

    # The next run has nothing to send; the failed deal put back to its synced owner is settled.
    stack.set_owner(d2, "")
    settled = sync_owners(stack.env, _run("manual__r3"))
    assert (settled["assigned"], settled["failed"]) == (0, 1)  # the Rejected one stays refused
    assert stack.assign_calls() == 4
    assert not stack.deal(d2).get("aws_sync_error")


def test_cosell_assign_refuses_an_unknown_owner_and_a_dry_run_writes_nothing(stack: Stack) -> None:
    from cosell_sync.errors import NotFoundError
    from cosell_sync.owners import assign_manually

    links = _linked_deals(stack, 1)
    [(deal_id, oid)] = links.items()
    stack.owner("Dana", "Lee", "dana.lee@partner.example")
    run = _run("manual__assign1")
    with pytest.raises(NotFoundError, match="no active HubSpot owner has this address"):
        assign_manually(stack.env, run, "", oid, "nobody@partner.example", dry_run=False)
    with pytest.raises(NotFoundError, match="no HubSpot deal linked"):
        assign_manually(stack.env, run, "", "O424242", "dana.lee@partner.example", dry_run=False)
    shown = assign_manually(stack.env, run, deal_id, "", "Dana.Lee@partner.example", dry_run=True)
    assert (shown["assignee"], shown["assigned"], shown["opportunity_id"]) == ("Dana Lee", False, oid)
    assert stack.assign_calls() == 0
    assert stack.notes(deal_id) == []
