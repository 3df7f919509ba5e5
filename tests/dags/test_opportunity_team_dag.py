"""The opportunity team as a seller meets it (dag.test() on the emulators).

A new co-sell deal with an owner and two collaborators gets an opportunity whose ``OpportunityTeam`` has the
three of them, owner first; the deal shows Partner Central's team in ``aws_opportunity_team`` with
``aws_team_last_sync``; a re-run writes nothing more.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

PROPS = ["aws_opportunity_id", "aws_opportunity_team", "aws_team_last_sync", "aws_sync_error"]


def _owner(stack: Any, first: str, last: str, email: str) -> str:
    return str(stack.hs_control("owners", {"firstName": first, "lastName": last, "email": email})["id"])


def test_a_new_cosell_deal_sends_its_team_and_shows_partner_centrals_team_once(sync_stack: Any) -> None:
    owner = _owner(sync_stack, "Olive", "Owner", "olive.owner@partner.example")
    first_collab = _owner(sync_stack, "Cara", "Collab", "cara.collab@partner.example")
    second_collab = _owner(sync_stack, "Cole", "Collab", "cole.collab@partner.example")
    deal_id = sync_stack.hs_control("seed", {"deals": 1, "contacts": 1, "companies": 1, "seed": 5})["deals"][
        0
    ]
    sync_stack.update_deal(
        deal_id,
        {
            "aws_sync_enabled": "true",
            "hubspot_owner_id": owner,
            "hs_all_collaborator_owner_ids": f"{first_collab};{second_collab}",
        },
    )

    report = sync_stack.report(sync_stack.run())
    assert report["hubspot_to_partner_central"]["created"] == 1
    listed = sync_stack.pc.list_opportunities(Catalog="AWS", MaxResults=100)["OpportunitySummaries"]
    oid = next(s["Id"] for s in listed if s.get("PartnerOpportunityIdentifier") == str(deal_id))
    team = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=oid)["OpportunityTeam"]
    assert [m["Email"] for m in team] == [
        "olive.owner@partner.example",
        "cara.collab@partner.example",
        "cole.collab@partner.example",
    ]
    assert {m["BusinessTitle"] for m in team} == {"PartnerAccountManager"}

    props = sync_stack.deal_by_opportunity(oid, PROPS)["properties"]
    assert not props.get("aws_sync_error")
    shown = json.loads(props["aws_opportunity_team"])
    assert [(m["email"], m["first_name"], m["last_name"]) for m in shown] == [
        ("olive.owner@partner.example", "Olive", "Owner"),
        ("cara.collab@partner.example", "Cara", "Collab"),
        ("cole.collab@partner.example", "Cole", "Collab"),
    ]
    stamp = props["aws_team_last_sync"]
    assert stamp

    # A re-run: no Partner Central write, no HubSpot write, the deal's team untouched.
    sync_stack.reset_calls()
    sync_stack.run()
    pc_calls, hs_calls = sync_stack.calls()
    writes = {
        k: v for k, v in pc_calls["by_operation"].items() if not k.startswith(("Get", "List", "Search"))
    }
    assert writes == {}
    assert not [
        e
        for e in hs_calls["by_endpoint"]
        if "batch/update" in e or "batch/create" in e or "batch/upsert" in e
    ]
    assert sync_stack.deal_by_opportunity(oid, PROPS)["properties"]["aws_team_last_sync"] == stamp
