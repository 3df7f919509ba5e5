"""``cosell_sync.extract`` against the Partner Central emulator (the real hook) and moto S3/DynamoDB.

What a user notices: a record that could not be read is reported (and later retried), never silently
dropped; an unchanged record is not read again (API quota); a record in the retry queue is read even
when nothing changed. The HubSpot-side helpers are checked as pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
import requests

from cosell_sync.config import SyncConfig, load_config
from cosell_sync.env import SyncEnv
from cosell_sync.extract import (
    extract_partner_central,
    fill_unread_from_baseline,
    hubspot_properties,
    window_filters,
)

PC_CONN = "AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT"
HS_CONN = "AIRFLOW_CONN_HUBSPOT_DEFAULT"


@pytest.fixture(scope="module")
def cfg() -> SyncConfig:
    return load_config()


class Stack:
    """The env under test plus the emulator's URL and seeded ids."""

    def __init__(self, env: SyncEnv, url: str, ids: list[str]) -> None:
        self.env = env
        self.url = url
        self.ids = ids

    def control(self, path: str, body: dict[str, Any]) -> Any:
        r = requests.post(f"{self.url}/_emulator/{path}", json=body, timeout=30)
        r.raise_for_status()
        return r.json()

    def calls(self) -> dict[str, int]:
        return requests.get(f"{self.url}/_emulator/calls", timeout=10).json()["by_operation"]

    def reset_calls(self) -> None:
        requests.delete(f"{self.url}/_emulator/calls", timeout=10)

    def opportunity(self, oid: str) -> dict[str, Any]:
        return self.env.partner_central.call("get_opportunity", Catalog="AWS", Identifier=oid)


@pytest.fixture
def stack(
    cfg: SyncConfig, pc_emulator: Any, hubspot_emulator: Any, make_sync_env: Callable[..., SyncEnv]
) -> Stack:
    # max_attempts=1: a throttled call surfaces at once instead of being retried by botocore.
    env = make_sync_env(cfg, max_attempts=1)
    seeded = requests.post(
        f"{pc_emulator.url}/_emulator/seed",
        json={"opportunities": 8, "seed": 3, "catalog": "AWS"},
        timeout=30,
    )
    seeded.raise_for_status()
    # Only the injected faults throttle: the service quota's timing must not decide what a test sees.
    requests.post(
        f"{pc_emulator.url}/_emulator/quotas", json={"enabled": False}, timeout=10
    ).raise_for_status()
    return Stack(env, pc_emulator.url, sorted(seeded.json()["opportunity_ids"]))


def run(run_id: str = "manual__1", **kw: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "catalog": "AWS",
        "opportunity_ids": [],
        "since_partner_central": None,
        "since_hubspot": None,
        "until": None,
        **kw,
    }


def snapshot(stack: Stack, result: dict[str, Any]) -> pd.DataFrame:
    return stack.env.snapshots.get_frame(result["key"])


# ---------------------------------------------------------------------------------------------------
# extract_partner_central
# ---------------------------------------------------------------------------------------------------
def test_full_extract_lists_and_reads_every_opportunity(stack: Stack) -> None:
    result = extract_partner_central(stack.env, run())
    assert (result["listed"], result["read"], result["failures"]) == (8, 8, [])
    assert result["api_calls"] == {"ListOpportunities": 1, "GetOpportunity": 8}
    assert stack.calls()["GetOpportunity"] == 8
    frame = snapshot(stack, result)
    assert sorted(frame.index) == stack.ids
    oid = stack.ids[0]
    opp = stack.opportunity(oid)
    assert frame.at[oid, "project_title"] == opp["Project"]["Title"]
    assert frame.at[oid, "_review_status"] == opp["LifeCycle"]["ReviewStatus"]
    assert json.loads(frame.at[oid, "_raw"])["Id"] == oid


def test_answers_converted_in_chunks_make_the_same_frame(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = snapshot(stack, extract_partner_central(stack.env, run("manual__whole")))
    # 8 answers, 3 at a time: three chunks (3, 3, 2) of rows, each answer dropped once converted.
    monkeypatch.setattr("cosell_sync.extract.FRAME_CHUNK", 3)

    result = extract_partner_central(stack.env, run("manual__chunked"))

    chunked = snapshot(stack, result)
    assert result["read"] == 8
    assert sorted(chunked.index) == stack.ids
    for oid in stack.ids:
        assert json.loads(chunked.at[oid, "_raw"])["Id"] == oid
    pd.testing.assert_frame_equal(chunked.sort_index(), whole.sort_index())


def test_throttled_reads_are_reported_as_failures_not_dropped(stack: Stack) -> None:
    stack.control("faults", {"throttle_rate": 0.5, "seed": 11})
    result = extract_partner_central(stack.env, run(opportunity_ids=stack.ids))
    failed = {f["opportunity_id"]: f["error"] for f in result["failures"]}
    frame = snapshot(stack, result)
    # Every wanted record is either in the snapshot or in failures: none silently lost.
    assert failed, "the fault seed should throttle at least one read"
    assert set(frame.index) | set(failed) == set(stack.ids)
    assert not set(frame.index) & set(failed)
    assert result["read"] == len(frame) == len(stack.ids) - len(failed)
    for error in failed.values():
        assert error["type"] == "ThrottledError"
        assert error["service"] == "partner_central"
        assert error["retriable"] is True


def test_every_read_failing_still_writes_an_empty_snapshot(stack: Stack) -> None:
    stack.control("faults", {"throttle_rate": 1.0, "seed": 1})
    result = extract_partner_central(stack.env, run(opportunity_ids=stack.ids[:3]))
    assert [f["opportunity_id"] for f in result["failures"]] == stack.ids[:3]
    assert result["read"] == 0
    assert snapshot(stack, result).empty


def test_unknown_opportunity_in_the_retry_queue_is_a_failure_and_the_rest_is_read(stack: Stack) -> None:
    stack.env.retry.add([{"opportunity_id": "O9999999", "reason": "FAILED", "direction": "x"}])
    result = extract_partner_central(stack.env, run(opportunity_ids=stack.ids[:2]))
    assert [f["opportunity_id"] for f in result["failures"]] == ["O9999999"]
    assert result["failures"][0]["error"]["type"] == "NotFoundError"
    assert sorted(snapshot(stack, result).index) == stack.ids[:2]


def test_unchanged_records_are_not_read_again_but_retry_queue_records_are(stack: Stack) -> None:
    first = extract_partner_central(stack.env, run())
    frame = snapshot(stack, first)
    # A baseline that matches Partner Central's LastModifiedDate: everything already synced.
    base = pd.DataFrame({"pc_last_modified": frame["_lm_key"]}, dtype=object)
    base.index.name = "opportunity_id"
    stack.env.baseline.commit(base, "manual__1")
    queued = stack.ids[4]
    stack.env.retry.add([{"opportunity_id": queued, "reason": "FAILED", "direction": "x"}])
    stack.reset_calls()
    second = extract_partner_central(stack.env, run("manual__2"))
    assert second["listed"] == 8
    assert sorted(snapshot(stack, second).index) == [queued]
    assert stack.calls().get("GetOpportunity") == 1


def test_a_console_edit_is_read_on_the_next_extract(stack: Stack) -> None:
    first = extract_partner_central(stack.env, run())
    base = pd.DataFrame({"pc_last_modified": snapshot(stack, first)["_lm_key"]}, dtype=object)
    base.index.name = "opportunity_id"
    stack.env.baseline.commit(base, "manual__1")
    edited = stack.ids[2]
    stack.control("simulate/aws-update", {"identifier": edited, "LifeCycle": {"NextSteps": "AWS edit"}})
    second = extract_partner_central(stack.env, run("manual__2"))
    frame = snapshot(stack, second)
    assert list(frame.index) == [edited]
    assert frame.at[edited, "next_steps"] == "AWS edit"


# ---------------------------------------------------------------------------------------------------
# HubSpot-side helpers (pure)
# ---------------------------------------------------------------------------------------------------
def test_window_filters_are_epoch_milliseconds_half_open() -> None:
    since, until = "2026-02-18T10:00:00.000+00:00", "2026-02-18T11:00:00Z"
    expected_since = str(int(datetime(2026, 2, 18, 10, tzinfo=UTC).timestamp() * 1000))
    expected_until = str(int(datetime(2026, 2, 18, 11, tzinfo=UTC).timestamp() * 1000))
    assert window_filters("hs_lastmodifieddate", since, until) == [
        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": expected_since},
        {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": expected_until},
    ]
    assert window_filters("lastmodifieddate", None, None) == []


def test_hubspot_properties_include_what_the_sync_needs(cfg: SyncConfig) -> None:
    deal = hubspot_properties(cfg, "deal")
    assert {"dealname", "amount", "aws_next_steps", cfg.link_property, cfg.cosell_property} <= set(deal)
    assert {"hs_lastmodifieddate", "dealstage", "hubspot_owner_id", "pipeline"} <= set(deal)
    assert deal == sorted(deal)
    contact = hubspot_properties(cfg, "contact")
    assert "lastmodifieddate" in contact
    assert "dealname" not in contact
    assert cfg.link_property not in contact


def test_fill_unread_from_baseline_replaces_only_objects_not_read(cfg: SyncConfig) -> None:
    index = pd.Index(["O1", "O2"], name="opportunity_id")
    frame = pd.DataFrame(
        {
            "project_title": ["deal read", "deal read"],
            "company_city": [None, "Berlin"],
            "_deal_id": ["D1", "D2"],
            "_company_id": ["C1", "C2"],
        },
        index=index,
        dtype=object,
    )
    base = pd.DataFrame(
        {"project_title": ["old", "old"], "company_city": ["Seattle", "Munich"]}, index=index, dtype=object
    )
    out = fill_unread_from_baseline(
        frame, base, cfg, read={"deal": {"D1", "D2"}, "company": {"C2"}, "contact": set()}
    )
    # C1 was not read this run: its city is the baseline's (unchanged), not "missing".
    assert out.at["O1", "company_city"] == "Seattle"
    assert out.at["O2", "company_city"] == "Berlin"
    assert list(out["project_title"]) == ["deal read", "deal read"]
    assert frame.at["O1", "company_city"] is None  # the input frame is not modified
