"""The opportunity team against both emulators (real hooks) and moto S3/DynamoDB, no Airflow.

What a seller notices: a new co-sell deal's owner and collaborators become the opportunity's team in Partner
Central (owner first; an owner Partner Central cannot take is left out and the log names the rule, never the
address); the deal shows Partner Central's team in ``aws_opportunity_team`` with ``aws_team_last_sync``; a
re-run writes nothing; a team changed in Partner Central reaches the deal; a collaborator change in HubSpot
is noted on the deal (Partner Central's team cannot be updated).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import requests

from cosell_sync import reconcile
from cosell_sync.apply import apply_hubspot, apply_partner_central
from cosell_sync.config import load_config
from cosell_sync.creates import prepare_creates
from cosell_sync.env import SyncEnv
from cosell_sync.extract import extract_hubspot, extract_partner_central
from cosell_sync.owners import sync_owners
from cosell_sync.setup import ensure_properties
from cosell_sync.team import TEAM_MEMBER, max_team, team_json
from tests.hubspot_reads import deal_notes

HEADERS = {"Authorization": "Bearer t"}
TEAM_PROPS = "aws_opportunity_team,aws_team_last_sync,aws_opportunity_id"


class Stack:
    """The env and the two emulators' URLs."""

    def __init__(self, env: SyncEnv, pc_url: str, hs_url: str) -> None:
        self.env, self.pc_url, self.hs_url = env, pc_url, hs_url

    def owner(self, first: str, last: str, email: str | None) -> str:
        body = {"firstName": first, "lastName": last, **({"email": email} if email else {})}
        r = requests.post(f"{self.hs_url}/_emulator/owners", json=body, timeout=10)
        r.raise_for_status()
        return str(r.json()["id"])

    def cosell_deal(self, owner: str, collaborators: list[str]) -> str:
        """A seeded deal (company and contact associated) turned co-sell, with an owner and collaborators."""
        seeded = requests.post(
            f"{self.hs_url}/_emulator/seed",
            json={"deals": 1, "contacts": 1, "companies": 1, "seed": 7},
            timeout=30,
        ).json()
        deal_id = str(seeded["deals"][0])
        self.update(
            deal_id,
            {
                "aws_sync_enabled": "true",
                "hubspot_owner_id": owner,
                "hs_all_collaborator_owner_ids": ";".join(collaborators),
            },
        )
        return deal_id

    def update(self, deal_id: str, props: dict[str, str]) -> None:
        r = requests.patch(
            f"{self.hs_url}/crm/v3/objects/deals/{deal_id}",
            json={"properties": props},
            headers=HEADERS,
            timeout=10,
        )
        r.raise_for_status()

    def deal(self, deal_id: str) -> dict[str, Any]:
        r = requests.get(
            f"{self.hs_url}/crm/v3/objects/deals/{deal_id}",
            params={"properties": TEAM_PROPS},
            headers=HEADERS,
            timeout=10,
        )
        return r.json()["properties"]

    def team(self, oid: str) -> list[dict[str, Any]]:
        got = self.env.partner_central.call("get_opportunity", Catalog="AWS", Identifier=oid)
        return got.get("OpportunityTeam") or []

    def sync(self, run_id: str) -> dict[str, Any]:
        """One reconcile run through its steps (what the DAG chains), up to commit and sync_owners."""
        env = self.env
        run = reconcile.prepare(env, {}, {"run_id": run_id, "dag_id": "cosell_reconcile"})
        pc = extract_partner_central(env, run)
        hs = extract_hubspot(env, run, pc)
        planned = reconcile.plan(env, run, pc, hs)
        creates = prepare_creates(env, run, planned)
        pc_applied = apply_partner_central(env, run, planned, creates)
        hs_applied = apply_hubspot(env, run, planned, pc_applied)
        reconcile.commit(env, run, planned, pc_applied, hs_applied)
        owners = sync_owners(env, run, hs)
        return {
            "pc": env.snapshots.get_json(pc_applied["key"]),
            "hs": env.snapshots.get_json(hs_applied["key"]),
            "owners": owners,
        }


@pytest.fixture
def stack(pc_emulator: Any, hubspot_emulator: Any, make_sync_env: Callable[..., SyncEnv]) -> Stack:
    cfg = load_config()
    env = make_sync_env(cfg)
    ensure_properties(cfg, env.hubspot)
    requests.post(f"{pc_emulator.url}/_emulator/quotas", json={"time_scale": 50}, timeout=10)
    return Stack(env, pc_emulator.url, hubspot_emulator.url)


def test_the_model_allows_ten_team_members() -> None:
    assert max_team() == 10


def test_a_new_deals_owner_and_collaborators_become_the_team_and_the_deal_shows_it_once(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    olive = stack.owner("Olive", "Owner", "Olive.Owner@Partner.example")
    cara = stack.owner("Cara", "Collab", "cara.collab@partner.example")
    cole = stack.owner("Cole", "Collab", "cole.collab@partner.example")
    broken = stack.owner("Bo", "Broken", "bo at partner")
    deal_id = stack.cosell_deal(olive, [cara, broken, cole, olive])

    with caplog.at_level(logging.INFO):
        first = stack.sync("manual__team1")

    created = first["pc"]["created"][deal_id]
    oid = created["opportunity_id"]
    # Owner first, then the collaborators in order; the owner listed again as a collaborator is sent once.
    assert stack.team(oid) == [
        {
            "Email": "olive.owner@partner.example",
            "FirstName": "Olive",
            "LastName": "Owner",
            "BusinessTitle": "PartnerAccountManager",
        },
        {
            "Email": "cara.collab@partner.example",
            "FirstName": "Cara",
            "LastName": "Collab",
            "BusinessTitle": "PartnerAccountManager",
        },
        {
            "Email": "cole.collab@partner.example",
            "FirstName": "Cole",
            "LastName": "Collab",
            "BusinessTitle": "PartnerAccountManager",
        },
    ]
    # The malformed address is left out: the log names the deal, the owner id and the rule, not the value.
    assert f"Deal {deal_id}: team member {broken} not sent: owner email: malformed ({TEAM_MEMBER}.Email" in (
        caplog.text
    )
    assert "bo at partner" not in caplog.text
    assert "olive.owner@partner.example" not in caplog.text.lower()
    # One owners page for the creates; the deal read and the link write carry the rest (no extra call).
    assert first["pc"]["api_calls"].get("owners") == 1

    props = stack.deal(deal_id)
    assert props["aws_opportunity_id"] == oid
    assert json.loads(props["aws_opportunity_team"]) == [
        {
            "email": "olive.owner@partner.example",
            "first_name": "Olive",
            "last_name": "Owner",
            "business_title": "PartnerAccountManager",
        },
        {
            "email": "cara.collab@partner.example",
            "first_name": "Cara",
            "last_name": "Collab",
            "business_title": "PartnerAccountManager",
        },
        {
            "email": "cole.collab@partner.example",
            "first_name": "Cole",
            "last_name": "Collab",
            "business_title": "PartnerAccountManager",
        },
    ]
    stamp = props["aws_team_last_sync"]
    assert stamp
    assert first["hs"]["team"] == 1

    # A re-run: nothing changed, so no create, no owners read and no team write.
    second = stack.sync("manual__team2")
    assert second["pc"]["created"] == {}
    assert "owners" not in second["pc"]["api_calls"]
    assert second["hs"]["team"] == 0
    assert stack.deal(deal_id)["aws_team_last_sync"] == stamp

    # Partner Central's team changes (an assignment made in Partner Central): the record's read brings it.
    stack.env.partner_central.call(
        "assign_opportunity",
        Catalog="AWS",
        Identifier=oid,
        Assignee={
            "Email": "cara.collab@partner.example",
            "FirstName": "Cara",
            "LastName": "Collab",
            "BusinessTitle": "PartnerAccountManager",
        },
    )
    third = stack.sync("manual__team3")
    assert third["hs"]["team"] == 1
    assert json.loads(stack.deal(deal_id)["aws_opportunity_team"]) == [
        {
            "email": "cara.collab@partner.example",
            "first_name": "Cara",
            "last_name": "Collab",
            "business_title": "PartnerAccountManager",
        }
    ]


def test_a_collaborator_change_is_noted_on_the_deal_not_sent(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    olive = stack.owner("Olive", "Owner", "olive.owner@partner.example")
    cara = stack.owner("Cara", "Collab", "cara.collab@partner.example")
    cole = stack.owner("Cole", "Collab", "cole.collab@partner.example")
    deal_id = stack.cosell_deal(olive, [cara])
    first = stack.sync("manual__collab1")
    oid = first["pc"]["created"][deal_id]["opportunity_id"]
    assert first["owners"]["team_notes"] == 0  # first sight of the link: recorded, not noted
    team_before = stack.team(oid)

    stack.update(deal_id, {"hs_all_collaborator_owner_ids": f"{cara};{cole}"})
    with caplog.at_level(logging.INFO):
        second = stack.sync("manual__collab2")

    assert second["owners"]["team_notes"] == 1
    # The changed deal's collaborators come from this run's extract: the step reads no deal again.
    assert "batch_read:deals" not in second["owners"]["api_calls"]
    notes = deal_notes(stack.hs_url, deal_id, "Opportunity team changed in HubSpot")
    assert len(notes) == 1
    assert "UpdateOpportunity cannot change it" in notes[0]
    assert stack.team(oid) == team_before  # Partner Central's team is unchanged
    assert "cole.collab@partner.example" not in caplog.text
    # The deal still shows Partner Central's team.
    assert [m["email"] for m in json.loads(stack.deal(deal_id)["aws_opportunity_team"])] == [
        "olive.owner@partner.example",
        "cara.collab@partner.example",
    ]

    third = stack.sync("manual__collab3")
    assert third["owners"]["team_notes"] == 0
    assert len(deal_notes(stack.hs_url, deal_id, "Opportunity team changed in HubSpot")) == 1


def test_team_json_keeps_partner_centrals_order_and_names_no_phone() -> None:
    team = [
        {"Email": "a@x.example", "FirstName": "A", "LastName": "One", "BusinessTitle": "OpportunityOwner"},
        {"Email": "b@x.example", "FirstName": "B", "LastName": "Two", "Phone": "+12065550100"},
    ]
    assert json.loads(team_json(team)) == [
        {"email": "a@x.example", "first_name": "A", "last_name": "One", "business_title": "OpportunityOwner"},
        {"email": "b@x.example", "first_name": "B", "last_name": "Two", "business_title": None},
    ]
    assert team_json(None) == "[]"


class _Directory:
    """Owners by id, without HubSpot (``OwnerDirectory``'s interface)."""

    def __init__(self, owners: dict[str, dict[str, Any]]) -> None:
        self.owners = owners

    def get(self, owner_id: str) -> dict[str, Any] | None:
        return self.owners.get(owner_id)


def test_at_most_ten_members_are_sent_and_the_rest_are_counted_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from cosell_sync.team import team_contacts

    owners = {
        str(i): {"id": str(i), "email": f"rep{i}@partner.example", "firstName": "Rep", "lastName": str(i)}
        for i in range(12)
    }
    with caplog.at_level(logging.WARNING):
        team = team_contacts("D1", [str(i) for i in range(12)], _Directory(owners), None, "OpportunityOwner")
    assert [m["Email"] for m in team] == [f"rep{i}@partner.example" for i in range(10)]
    assert {m["BusinessTitle"] for m in team} == {"OpportunityOwner"}
    assert (
        "Deal D1: 2 team member(s) not sent (CreateOpportunity OpportunityTeam holds at most 10)"
        in caplog.text
    )
    assert "rep11@partner.example" not in caplog.text
