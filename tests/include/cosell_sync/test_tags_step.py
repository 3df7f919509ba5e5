"""``cosell_sync.tags.sync_tags`` against both emulators (real hooks) and moto S3/DynamoDB, no Airflow.

What it costs and what it leaves: the first sight of a link takes the union of both sides' tags; an unchanged
book costs no call at all between full refreshes; ListTagsForResource is budgeted per run, the rest wait;
a retried task sends nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
import requests

from cosell_sync import tags as tags_module
from cosell_sync.config import load_config
from cosell_sync.env import SyncEnv
from cosell_sync.setup import ensure_properties
from cosell_sync.storage import StepState
from cosell_sync.tags import sync_tags

HEADERS = {"Authorization": "Bearer t"}


@pytest.fixture
def env(pc_emulator: Any, hubspot_emulator: Any, make_sync_env: Callable[..., SyncEnv]) -> SyncEnv:
    cfg = load_config()
    built = make_sync_env(cfg)
    ensure_properties(cfg, built.hubspot)
    requests.post(f"{pc_emulator.url}/_emulator/quotas", json={"time_scale": 50}, timeout=10)
    built.pc_url = pc_emulator.url  # type: ignore[attr-defined]
    built.hs_url = hubspot_emulator.url  # type: ignore[attr-defined]
    return built


def _linked(env: SyncEnv, count: int) -> dict[str, str]:
    """Opportunity -> deal for ``count`` seeded opportunities, each linked to a new deal in the baseline."""
    oids = requests.post(
        f"{env.pc_url}/_emulator/seed",  # type: ignore[attr-defined]
        json={"opportunities": count, "seed": 3, "catalog": "AWS"},
        timeout=30,
    ).json()["opportunity_ids"]
    links: dict[str, str] = {}
    for oid in oids:
        r = requests.post(
            f"{env.hs_url}/crm/v3/objects/deals",  # type: ignore[attr-defined]
            json={"properties": {"dealname": f"Deal {oid}", "aws_opportunity_id": oid}},
            headers=HEADERS,
            timeout=10,
        )
        r.raise_for_status()
        links[oid] = str(r.json()["id"])
    frame = pd.DataFrame(
        {"deal_id": list(links.values())}, index=pd.Index(list(links), name="opportunity_id")
    )
    env.baseline.commit(frame, "manual__seed")
    return links


def _arn(env: SyncEnv, oid: str) -> str:
    return str(env.partner_central.call("get_opportunity", Identifier=oid)["Arn"])


def _deal_tags(env: SyncEnv, deal_id: str) -> str:
    r = requests.get(
        f"{env.hs_url}/crm/v3/objects/deals/{deal_id}",  # type: ignore[attr-defined]
        params={"properties": "aws_tags"},
        headers=HEADERS,
        timeout=10,
    )
    return str(r.json()["properties"].get("aws_tags") or "")


def _set_deal_tags(env: SyncEnv, deal_id: str, text: str) -> None:
    requests.patch(
        f"{env.hs_url}/crm/v3/objects/deals/{deal_id}",  # type: ignore[attr-defined]
        json={"properties": {"aws_tags": text}},
        headers=HEADERS,
        timeout=10,
    ).raise_for_status()


def _run(run_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "catalog": "AWS",
        "started_at": "2026-12-06T10:00:00.000Z",
        "direction": "both",
        **extra,
    }


def test_first_sight_unions_then_an_unchanged_book_costs_nothing_and_a_retry_sends_nothing_twice(
    env: SyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a book of more than 100 records: a full refresh starts with one search scan.
    monkeypatch.setattr(tags_module, "SCAN_ABOVE", 1)
    links = _linked(env, 2)
    (a, deal_a), (b, deal_b) = links.items()
    env.partner_central.call("tag_resource", ResourceArn=_arn(env, a), Tags=[{"Key": "Env", "Value": "prod"}])
    _set_deal_tags(env, deal_a, "Team:North")
    state = StepState(env.snapshots, "AWS", "tags")

    first = sync_tags(env, _run("manual__t1"))

    # The first run is a full refresh: one search shows b has no tags, and its deal none either, so b
    # costs no tag read; a is read (its ARN from one ListOpportunities), tagged and its deal updated.
    assert first["api_calls"] == {
        "SearchOpportunities": 1,
        "batch_read:deals": 1,
        "ListOpportunities": 1,
        "ListTagsForResource": 1,
        "TagResource": 1,
        "batch_update:deals": 1,
    }
    assert sorted(_deal_tags(env, deal_a).split(";")) == ["Env:prod", "Team:North"]
    assert _deal_tags(env, deal_b) == ""
    got = env.partner_central.call("list_tags_for_resource", ResourceArn=_arn(env, a))["Tags"]
    assert {t["Key"]: t["Value"] for t in got} == {"Env": "prod", "Team": "North"}

    # Nothing changed, no full refresh due, no record read by the run: not one call.
    quiet = sync_tags(env, _run("manual__t2"))
    assert quiet["api_calls"] == {}
    # Both deals changed in HubSpot (our own write changes a deal too), their tags did not: the extract's
    # snapshot holds their tags text, so not one call.
    hs_frame = pd.DataFrame(
        {"_deal_id": [deal_a, deal_b], "_tags": [_deal_tags(env, deal_a), None]},
        index=pd.Index([a, b], name="opportunity_id"),
    )
    env.snapshots.put_frame(hs_frame, "runs/test/hubspot.parquet")
    touched = sync_tags(env, _run("manual__t2b"), hs={"key": "runs/test/hubspot.parquet", "deals": 2})
    assert touched["api_calls"] == {}

    # At the next full refresh an unchanged book costs one search and one batch read per 100 records.
    # A seller's edit, then a task that dies after its writes and before saving its state: the retry
    # reads the tags again, finds both sides agreeing and sends nothing.
    before, meta = state.load()
    _set_deal_tags(env, deal_b, "Team:South")
    sent = sync_tags(env, _run("manual__t3", mode="full"))
    assert (sent["api_calls"]["TagResource"], sent["api_calls"]["ListTagsForResource"]) == (1, 1)
    state.save_frame(before)
    state.save_meta(meta)
    again = sync_tags(env, _run("manual__t3", mode="full"))
    assert "TagResource" not in again["api_calls"]
    assert "batch_update:deals" not in again["api_calls"]
    actions = [e["action"] for e in env.audit.history(b)]
    assert actions.count("TAG_OPPORTUNITY") == 1


def test_reads_are_budgeted_and_the_rest_wait_for_the_next_run(env: SyncEnv) -> None:
    for deal_id in _linked(env, 3).values():
        _set_deal_tags(env, deal_id, "Team:North")
    env.config = env.config.model_copy(
        update={"tags": env.config.tags.model_copy(update={"reads_per_run": 2})}
    )
    first = sync_tags(env, _run("manual__b1"))
    assert (first["read"], first["waiting"]) == (2, 1)
    second = sync_tags(env, _run("manual__b2"))
    assert (second["read"], second["waiting"]) == (1, 0)
    assert second["api_calls"]["ListTagsForResource"] == 1


def test_opportunities_created_by_the_run_are_not_read_and_get_their_deals_tags(env: SyncEnv) -> None:
    links = _linked(env, 2)
    (a, deal_a), (b, _deal_b) = links.items()
    _set_deal_tags(env, deal_a, "Team:North")
    # apply_partner_central's result names both as created now (a linked or recovered one would not count).
    created = {d: {"opportunity_id": o} for o, d in links.items()}
    env.snapshots.put_json({"created": created}, "runs/test/apply_partner_central.json")
    out = sync_tags(env, _run("manual__c1"), applied={"key": "runs/test/apply_partner_central.json"})
    # No tag read at all (a new opportunity has none); a's ARN once, a's tags sent.
    assert out["api_calls"] == {"batch_read:deals": 1, "ListOpportunities": 1, "TagResource": 1}
    got = env.partner_central.call("list_tags_for_resource", ResourceArn=_arn(env, a))["Tags"]
    assert got == [{"Key": "Team", "Value": "North"}]
    assert env.partner_central.call("list_tags_for_resource", ResourceArn=_arn(env, b))["Tags"] == []


def test_records_the_run_read_are_checked_by_search_and_only_moved_ones_read(
    env: SyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tags_module, "SCAN_ABOVE", 1)  # as with more than 100 records read
    links = _linked(env, 2)
    (a, deal_a), _ = links.items()
    sync_tags(env, _run("manual__s1"))
    arns = {o: _arn(env, o) for o in links}
    # The run's extract read both records (an edit of a record does not move its tags).
    raw = pd.DataFrame(
        {"_raw": [json.dumps({"Arn": arns[o]}) for o in links]}, index=pd.Index(list(links), name="id")
    )
    env.snapshots.put_frame(raw, "runs/test/partner_central.parquet")
    pc = {"key": "runs/test/partner_central.parquet", "read": 2}

    unchanged = sync_tags(env, _run("manual__s2"), pc=pc)
    assert unchanged["api_calls"] == {"SearchOpportunities": 1}  # one search by id, nothing else

    env.partner_central.call("tag_resource", ResourceArn=arns[a], Tags=[{"Key": "Env", "Value": "prod"}])
    moved = sync_tags(env, _run("manual__s3"), pc=pc)
    assert moved["api_calls"] == {
        "SearchOpportunities": 1,
        "batch_read:deals": 1,
        "ListTagsForResource": 1,
        "batch_update:deals": 1,
    }
    assert _deal_tags(env, deal_a) == "Env:prod"
