"""Fault group: oversized records (issue 10, case 5).

HubSpot text properties take up to 65,536 characters; DynamoDB items at most 400 KB. A record with six
65,000-character fields used to make every commit's ``BatchWriteItem`` fail, so nothing was audited and
the watermark never moved. Large values now go to S3 with a pointer in the item, and are read back
transparently by the audit trail (history, rollback's ``state_at``) and the retry queue.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.dags.scenarios import editable, set_hs, synced_book

pytestmark = [pytest.mark.xdist_group("dags")]

#: Under HubSpot's 65,536-character limit for a text property; six of them pass DynamoDB's 400 KB.
HUGE = 65_000
#: DynamoDB's maximum item size.
ITEM_LIMIT = 400 * 1024

# Six mapped text fields (three on the deal, three on its company), each with its own filler so a
# value read back from the wrong place cannot pass for the right one.
HUGE_FIELDS = {
    "project_title": "T",
    "customer_business_problem": "B",
    "next_steps": "N",
    "company_name": "C",
    "company_street": "S",
    "company_city": "Y",
}


def _raw_audit_items(stack: Any, oid: str) -> list[dict[str, Any]]:
    from cosell_sync.config import load_config

    cfg = load_config()
    resp = stack.aws("dynamodb").query(
        TableName=cfg.storage.audit_table,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": oid}},
    )
    return resp["Items"]


def _item_bytes(item: dict[str, Any]) -> int:
    import json

    return len(json.dumps(item, ensure_ascii=False).encode())


# -- the stores, against moto ----------------------------------------------------------------------
AUDIT, STATE, BUCKET = "faults-audit", "faults-state", "faults-bucket"
T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


@pytest.fixture
def stores(aws_endpoint: str) -> tuple[Any, Any]:
    """(DynamoDB client, S3 store) with the audit and state tables and the bucket created."""
    import boto3

    from cosell_sync.bootstrap import ensure_storage
    from cosell_sync.storage import SnapshotStore

    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    ensure_storage(s3, ddb, BUCKET, AUDIT, STATE)
    return ddb, SnapshotStore(s3, BUCKET, "cosell-sync")


def _entry(oid: str, run: int, changes: dict[str, tuple[Any, Any]], **kw: Any) -> Any:
    from cosell_sync.audit import AuditEntry

    return AuditEntry(
        opportunity_id=oid,
        deal_id="42",
        run_id=f"scheduled__run{run}",
        run_timestamp=T0 + timedelta(hours=run),
        direction="HUBSPOT_TO_PARTNER_CENTRAL",
        action=kw.pop("action", "UPDATE_OPPORTUNITY"),
        source="HUBSPOT",
        changes={k: {"old": v[0], "new": v[1]} for k, v in changes.items()},
        **kw,
    )


def test_audit_entries_over_the_item_limit_round_trip_through_s3(stores: tuple[Any, Any]) -> None:
    from cosell_sync.audit import AuditTrail

    ddb, store = stores
    trail = AuditTrail(ddb, AUDIT, 2555, store)
    old = {name: fill.lower() * HUGE for name, fill in HUGE_FIELDS.items()}
    new = {name: fill * HUGE for name, fill in HUGE_FIELDS.items()}
    big = _entry("O1", 1, {n: (old[n], new[n]) for n in HUGE_FIELDS})
    # A failed write of the same values: its error carries no values, but its changes do.
    failed = _entry(
        "O1", 2, {n: (new[n], new[n] + "!") for n in HUGE_FIELDS}, success=False, error={"code": "X"}
    )
    small = _entry("O2", 1, {"next_steps": ("a", "b")})
    # One batch holds all three: before the fix the oversized items failed the whole BatchWriteItem.
    assert trail.write([big, failed, small]) == 3

    (read_small,) = trail.history("O2")
    assert read_small["changes"] == {"next_steps": {"old": "a", "new": "b"}}
    assert "offloaded" not in read_small
    history = trail.history("O1")
    assert [h["metadata"]["runId"] for h in history] == ["scheduled__run2", "scheduled__run1"]
    assert history[1]["changes"] == {n: {"old": old[n], "new": new[n]} for n in HUGE_FIELDS}
    assert history[0]["success"] is False
    assert history[0]["error"] == {"code": "X"}
    assert "offloaded" not in history[1]
    # What rollback restores (state_at) reads the values back too; the failed write does not count.
    assert trail.state_at("O1", T0 + timedelta(hours=3)) == new
    # In DynamoDB: keys, small attributes and a pointer, all well under the limit.
    raw = ddb.query(
        TableName=AUDIT,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": "O1"}},
    )["Items"]
    assert len(raw) == 2
    for item in raw:
        assert _item_bytes(item) < ITEM_LIMIT
        assert item["offloaded"]["M"]["attributes"]["L"] == [{"S": "changes"}]
        assert item["action"]["S"] == "UPDATE_OPPORTUNITY"
    # A retried commit writes the same keys: the same objects are overwritten, none added.
    trail.write([big, failed])
    assert len(store.list_keys(f"offload/{AUDIT}/")) == 2


def test_retry_items_over_the_item_limit_round_trip_through_s3(stores: tuple[Any, Any]) -> None:
    from cosell_sync.state import RetryQueue

    ddb, store = stores
    queue = RetryQueue(ddb, STATE, "AWS", store)
    error = {"code": "VALIDATION", "message": "x" * 450_000, "retriable": False}
    added = queue.add(
        [
            {"opportunity_id": "O1", "reason": "FAILED", "error": error, "direction": "TO_PC"},
            {"opportunity_id": "O2", "reason": "FAILED", "error": {"code": "Y"}, "direction": "TO_PC"},
        ],
        run_id="r1",
    )
    assert added == 2
    by_id = {i["opportunity_id"]: i for i in queue.list()}
    assert by_id["O1"]["error"] == error
    assert "offloaded" not in by_id["O1"]
    assert by_id["O2"]["error"] == {"code": "Y"}
    # Queued again by the next run: attempts count on, the large attribute still reads back.
    queue.add([{"opportunity_id": "O1", "reason": "FAILED", "error": error, "direction": "TO_PC"}], "r2")
    (again,) = [i for i in queue.list() if i["opportunity_id"] == "O1"]
    assert again["attempts"] == 2
    assert again["error"] == error
    # A lost S3 object costs the item its error text, never the queue: the record is still listed.
    for obj in store.list_keys(f"offload/{STATE}/"):
        store.s3.delete_object(Bucket=BUCKET, Key=store.full_key(obj["key"]))
    assert {i["opportunity_id"] for i in queue.list()} == {"O1", "O2"}
    queue.remove(["OPP#O1", "OPP#O2"])
    assert queue.list() == []


# -- through the DAG -------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_record_with_six_huge_fields_is_audited_and_never_blocks_the_run(sync_stack: Any) -> None:
    from cosell_sync.config import load_config
    from cosell_sync.state import RetryQueue, WatermarkStore
    from cosell_sync.storage import SnapshotStore

    ids = synced_book(sync_stack, opportunities=8)
    big, small = editable(sync_stack, ids)[:2]
    huge = {name: fill * HUGE for name, fill in HUGE_FIELDS.items()}
    set_hs(sync_stack, big, huge)
    set_hs(sync_stack, small, {"next_steps": "An ordinary edit in the same run"})
    cfg = load_config()
    watermarks = WatermarkStore(sync_stack.aws("dynamodb"), cfg.storage.state_table)
    before = watermarks.get("AWS", "hubspot")

    # The huge record cannot be written: the run commits, then fails its report (fail_on_record_errors).
    run = sync_stack.run(expect="failed_at_report")
    report = sync_stack.report(run)

    # The ordinary record synced and was audited in the same run.
    opp = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=small)
    assert opp["LifeCycle"]["NextSteps"] == "An ordinary edit in the same run"
    small_entries = [e for e in sync_stack.audit(small) if e["metadata"]["runId"] == run.run_id]
    assert [e["action"] for e in small_entries] == ["UPDATE_OPPORTUNITY"]
    # The oversized record has its audit entry, with every value as it was (read back from S3).
    entries = [e for e in sync_stack.audit(big) if e["metadata"]["runId"] == run.run_id]
    assert entries, "the oversized record has no audit entry for the run"
    changes: dict[str, Any] = {}
    for entry in entries:
        changes.update(entry["changes"])
    for name, value in huge.items():
        assert changes[name]["new"] == value, name
    # In DynamoDB the item is a pointer: under the limit, with the values in the storage bucket.
    raw = _raw_audit_items(sync_stack, big)
    assert all(_item_bytes(i) < ITEM_LIMIT for i in raw)
    assert any("offloaded" in i for i in raw)
    # The run went on: the watermark moved, and the record is queued (it cannot be written as is).
    after = watermarks.get("AWS", "hubspot")
    assert after is not None
    assert before is None or after > before
    assert report["watermark_advanced"] is True
    store = SnapshotStore(sync_stack.aws("s3"), cfg.storage.bucket, cfg.storage.prefix)
    queued = RetryQueue(sync_stack.aws("dynamodb"), cfg.storage.state_table, "AWS", store).list()
    assert big in {q.get("opportunity_id") for q in queued}
    assert report["queued_for_retry"] >= 1

    # The next run reads the queue (and the pointers) and is not blocked either (the record fails again).
    sync_stack.run(expect="failed_at_report")
