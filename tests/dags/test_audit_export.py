"""``cosell_audit_export`` end to end on moto: one day of the audit trail as Hive-partitioned Parquet."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

DAY_1 = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
DAY_2 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def _entries(when: datetime, n: int, run: str) -> list[Any]:
    from cosell_sync.audit import AuditEntry

    return [
        AuditEntry(
            opportunity_id=f"O{i}",
            deal_id=str(100 + i),
            run_id=run,
            run_timestamp=when,
            direction="HUBSPOT_TO_PARTNER_CENTRAL",
            action="UPDATE_OPPORTUNITY",
            source="HUBSPOT",
            changes={
                "next_steps": {"old": f"call {i}", "new": f"demo {i}"},
                "stage": {"old": "A", "new": "B"},
            },
            apiCalls=["GetOpportunity", "UpdateOpportunity"],
            metadata={"dagId": "cosell_reconcile"},
        )
        for i in range(n)
    ]


def _read_day(stack: Any, bucket: str, prefix: str) -> Any:
    """The whole ``audit/`` dataset as pandas reads it from S3 (pyarrow's S3 filesystem on moto)."""
    import pandas as pd
    from pyarrow import fs

    s3 = fs.S3FileSystem(
        endpoint_override=stack.aws_url,
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        scheme="http",
    )
    return pd.read_parquet(f"{bucket}/{prefix}/audit/", filesystem=s3)


def _keys(stack: Any, bucket: str, prefix: str) -> dict[str, str]:
    listed = stack.aws("s3").list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/audit/").get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listed}


def test_one_day_exported_as_parquet_read_back_with_pandas_and_rerun_idempotent(sync_stack: Any) -> None:
    from cosell_sync.audit import AuditTrail
    from cosell_sync.config import load_config
    from cosell_sync.storage import SnapshotStore

    cfg = load_config()
    bucket, prefix = cfg.storage.bucket, cfg.storage.prefix
    store = SnapshotStore(sync_stack.aws("s3"), bucket, prefix)
    # The value policy applies when entries are written; the export must carry it, not the raw value.
    trail = AuditTrail(
        sync_stack.aws("dynamodb"), cfg.storage.audit_table, 30, store, value_policy={"next_steps": "hash"}
    )
    trail.write(_entries(DAY_1, 5, "scheduled__day1") + _entries(DAY_2, 3, "scheduled__day2"))

    sync_stack.run("cosell_audit_export", conf={"date": "2026-03-01"})

    keys = _keys(sync_stack, bucket, prefix)
    assert sorted(keys) == [
        f"{prefix}/audit/date=2026-03-01/_manifest.json",
        f"{prefix}/audit/date=2026-03-01/part-0000.parquet",
    ]
    frame = _read_day(sync_stack, bucket, prefix)
    assert len(frame) == 5
    assert {str(d) for d in frame["date"]} == {"2026-03-01"}  # the Hive partition column
    assert set(frame["run_id"]) == {"scheduled__day1"}
    assert sorted(frame["opportunity_id"]) == [f"O{i}" for i in range(5)]
    assert set(frame["action"]) == {"UPDATE_OPPORTUNITY"}
    changes = json.loads(frame.set_index("opportunity_id").loc["O1", "changes"])
    assert changes["stage"] == {"old": "A", "new": "B"}
    assert changes["next_steps"]["new"].startswith("sha256:")  # hashed as written
    assert "demo 1" not in frame.to_json()
    manifest = store.get_json("audit/date=2026-03-01/_manifest.json")
    assert (manifest["rows"], manifest["parts"]) == (5, ["part-0000.parquet"])

    # Re-run the same day: same keys, same bytes.
    sync_stack.run("cosell_audit_export", conf={"date": "2026-03-01"})
    assert _keys(sync_stack, bucket, prefix) == keys


def test_an_empty_day_writes_only_its_manifest_and_a_bad_date_fails_at_once(sync_stack: Any) -> None:
    from cosell_sync.config import load_config
    from cosell_sync.storage import SnapshotStore

    cfg = load_config()
    sync_stack.run("cosell_audit_export", conf={"date": "2026-02-10"})
    store = SnapshotStore(sync_stack.aws("s3"), cfg.storage.bucket, cfg.storage.prefix)
    assert [o["key"] for o in store.list_keys("audit/date=2026-02-10")] == [
        "audit/date=2026-02-10/_manifest.json"
    ]
    assert store.get_json("audit/date=2026-02-10/_manifest.json")["rows"] == 0

    sync_stack.run("cosell_audit_export", conf={"date": "2026-02-30"}, expect="failed")
