"""Conflict types in the store, CUSTOM_VALUE resolutions, typed conflicts from write results, task bodies."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from cosell_sync.apply import announcement, typed_conflicts
from cosell_sync.bootstrap import ensure_storage
from cosell_sync.config import load_config
from cosell_sync.conflict_store import ConflictStore
from cosell_sync.errors import ConflictError
from cosell_sync.plan import Plan
from cosell_sync.writers.hubspot import conflict_task_body

STATE = "cosell-state"


@pytest.fixture
def store(aws_endpoint: str) -> ConflictStore:
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    ensure_storage(s3, ddb, "cosell-test", "cosell-audit", STATE)
    return ConflictStore(ddb, STATE, "AWS")


def conflict(**kw: Any) -> dict[str, Any]:
    return {
        "opportunity_id": "O1",
        "deal_id": "1",
        "field": "next_steps",
        "hubspot_value": "HubSpot text",
        "partner_central_value": "Partner Central text",
        "hubspot_timestamp": "2026-02-18T10:00:00.000+00:00",
        "partner_central_timestamp": "2026-02-18T10:00:02.000+00:00",
        **kw,
    }


def test_type_is_stored_and_older_items_read_as_simultaneous_update(store: ConflictStore) -> None:
    [locked] = store.open([conflict(conflict_type="LOCKED_FIELD")])
    assert store.get(locked["conflict_id"])["conflict_type"] == "LOCKED_FIELD"
    # An item written before types existed has no attribute: it is a simultaneous update.
    store.ddb.update_item(
        TableName=STATE,
        Key=store._key("O1", "next_steps"),
        UpdateExpression="REMOVE conflict_type",
    )
    assert store.pending("O1")[0]["conflict_type"] == "SIMULTANEOUS_UPDATE"
    with pytest.raises(ValueError, match="unknown conflict_type"):
        store.open([conflict(field="stage", conflict_type="SOMETHING_ELSE")])


def test_custom_value_resolution_keeps_the_value_and_refuses_another(store: ConflictStore) -> None:
    [c] = store.open([conflict()])
    with pytest.raises(ValueError, match="custom_value"):
        store.resolve(c["conflict_id"], "CUSTOM_VALUE", "", "owner:42")
    resolved = store.resolve(
        c["conflict_id"], "CUSTOM_VALUE", "agreed", "owner:42", custom_value="Third text"
    )
    assert (resolved["resolution"], resolved["resolved_value"]) == ("CUSTOM_VALUE", "Third text")
    again = store.resolve(c["conflict_id"], "CUSTOM_VALUE", "retry", "owner:42", custom_value="Third text")
    assert again["resolved_value"] == "Third text"
    with pytest.raises(ConflictError):
        store.resolve(c["conflict_id"], "CUSTOM_VALUE", "other", "owner:42", custom_value="Fourth text")


def test_typed_conflicts_from_blocked_superseded_and_rejected_writes() -> None:
    cfg = load_config().model_copy(deep=True)
    cfg.conflicts.manual_resolution = ["next_steps"]
    plan = Plan(
        hubspot_updates={"O1": {"project_title": "PC title"}},
        blocked=[
            {
                "opportunity_id": "O1",
                "field": "project_title",
                "reason": "LOCKED_AFTER_APPROVAL",
                "value": "HS",
            },
            {"opportunity_id": "O9", "field": "next_steps", "reason": "REJECTED_READ_ONLY", "value": "HS"},
        ],
        partner_central_updates={
            "O2": {"next_steps": "HS next", "target_close_date": "2027-01-31"},
            "O3": {"next_steps": "HS long", "target_close_date": "2027-01-31"},
            "O4": {"target_close_date": "2027-02-28"},
        },
        expected={"O3": {"next_steps": "PC next", "target_close_date": "2026-12-31"}},
    )
    pc_results = {
        # next_steps is manual: a person decides; target_close_date follows its strategy next run.
        "superseded": {"O2": {"next_steps": "PC meanwhile", "target_close_date": "2027-03-31"}},
        "superseded_at": {"O2": "2026-02-18T11:00:00.000+00:00"},
        "failed": {
            "O3": {"type": "ValidationError", "code": "ValidationException", "fields": "LifeCycle.NextSteps"},
            "O4": {"type": "ServiceUnavailableError", "code": "InternalServerException"},
        },
    }
    times = {"hubspot": {"O1": "h1", "O2": "h2", "O3": "h3"}, "partner_central": {"O1": "p1", "O3": "p3"}}
    rows = typed_conflicts(cfg, plan, pc_results, times, lambda oid, obj: f"deal-{oid}")
    got = {
        (r["opportunity_id"], r["field"]): (
            r["conflict_type"],
            r["hubspot_value"],
            r["partner_central_value"],
            r["hubspot_timestamp"],
            r["partner_central_timestamp"],
        )
        for r in rows
    }
    assert got == {
        ("O1", "project_title"): ("LOCKED_FIELD", "HS", "PC title", "h1", "p1"),
        ("O2", "next_steps"): (
            "STALE_DATA",
            "HS next",
            "PC meanwhile",
            "h2",
            "2026-02-18T11:00:00.000+00:00",
        ),
        ("O3", "next_steps"): ("REJECTED_VALUE", "HS long", "PC next", "h3", "p3"),
    }
    assert all(r["deal_id"] == f"deal-{r['opportunity_id']}" for r in rows)
    # Deterministic ids: a retried task opens the same occurrences.
    again = typed_conflicts(cfg, plan, pc_results, times, lambda oid, obj: f"deal-{oid}")
    assert [r["conflict_id"] for r in again] == [r["conflict_id"] for r in rows]


def test_task_body_names_both_values_and_times_and_the_announcement_none() -> None:
    item = {**conflict(conflict_type="REJECTED_VALUE"), "conflict_id": "conf-1", "hubspot_value": "<b>x</b>"}
    body = conflict_task_body(item)
    assert "HubSpot value: &lt;b&gt;x&lt;/b&gt; (changed 2026-02-18T10:00:00.000+00:00)" in body
    assert "AWS Partner Central value: Partner Central text (changed 2026-02-18T10:00:02.000+00:00)" in body
    assert "conf-1" in body
    assert "rejected" in body
    message = announcement({**item, "catalog": "AWS", "status": "PENDING"})
    assert message["conflictType"] == "REJECTED_VALUE"
    assert "<b>x</b>" not in str(message)
    assert "Partner Central text" not in str(message)


def test_an_announcement_that_failed_is_sent_by_the_next_run_once(store: ConflictStore) -> None:
    from types import SimpleNamespace

    from cosell_sync.apply import _announce

    [failed] = store.open([conflict()], run_id="run-1")
    # A conflict opened before the topic existed (another run, never tried): not announced later.
    store.open([conflict(opportunity_id="O0", deal_id="0")], run_id="run-0")
    sent: list[str] = []

    def down(message: dict[str, Any]) -> str:
        raise ConnectionError("topic unreachable")

    def up(message: dict[str, Any]) -> str:
        sent.append(message["conflictId"])
        return f"m-{len(sent)}"

    assert _announce(SimpleNamespace(announce=down, conflicts=store), "run-1") == 0
    item = store.get(failed["conflict_id"])
    assert item["announce_error"] == "ConnectionError"
    assert not item.get("announced_at")

    # The next run opened nothing: it still sends the one that failed, and only that one.
    assert _announce(SimpleNamespace(announce=up, conflicts=store), "run-2") == 1
    assert sent == [failed["conflict_id"]]
    assert store.get(failed["conflict_id"])["announcement_id"] == "m-1"
    # and once
    assert _announce(SimpleNamespace(announce=up, conflicts=store), "run-3") == 0
    assert sent == [failed["conflict_id"]]
