from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pandas as pd
import pytest

from cosell_sync.bootstrap import ensure_storage
from cosell_sync.conflict_store import ConflictStore
from cosell_sync.errors import ConflictError, NotFoundError, ValidationError
from cosell_sync.state import BaselineStore, RetryQueue, WatermarkStore
from cosell_sync.storage import SnapshotStore

BUCKET = "cosell-test"
STATE = "cosell-state"
T0 = datetime(2026, 2, 18, 10, tzinfo=UTC)


@pytest.fixture
def clients(aws_endpoint):
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    ensure_storage(s3, ddb, BUCKET, "cosell-audit", STATE)
    return s3, ddb


@pytest.fixture
def baseline(clients):
    return BaselineStore(SnapshotStore(clients[0], BUCKET, "cosell"), "AWS")


@pytest.fixture
def ddb(clients):
    return clients[1]


def frame(rows: dict[str, dict[str, str | None]]) -> pd.DataFrame:
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "opportunity_id"
    return df


class TestBaselineStore:
    def test_load_before_first_commit_is_empty_with_index_name(self, baseline):
        df = baseline.load()
        assert df.empty
        assert df.index.name == "opportunity_id"
        assert "deal_id" in df.columns

    def test_commit_inserts_then_upserts_only_given_columns(self, baseline):
        baseline.commit(
            frame(
                {
                    "O1": {"deal_id": "1", "stage": "Prospect", "amount": "10"},
                    "O2": {"deal_id": "2", "stage": "Qualified", "amount": "20"},
                }
            ),
            "run1",
        )
        # Second run: O1's stage changes, O1's amount is cleared (an explicit None), O3 is new.
        version = baseline.commit(
            frame({"O1": {"stage": "Committed", "amount": None}, "O3": {"stage": "Prospect", "amount": "5"}}),
            "run2",
        )
        assert version == "cosell/state/AWS/baseline/run2.parquet"
        df = baseline.load()
        assert df.index.tolist() == ["O1", "O2", "O3"]
        assert df.loc["O1", "stage"] == "Committed"
        assert pd.isna(df.loc["O1", "amount"])
        assert df.loc["O1", "deal_id"] == "1"  # column not in the update: kept
        assert df.loc["O2", "stage"] == "Qualified"
        assert df.loc["O2", "run_id"] == "run1"
        assert df.loc["O3", "run_id"] == "run2"
        assert pd.isna(df.loc["O3", "deal_id"])
        assert baseline.get("O2")["stage"] == "Qualified"
        assert baseline.get("O9") is None

    def test_a_column_first_committed_without_values_takes_strings_later(self, baseline):
        """A key only some rows have is NaN (double) in pandas; a later run's strings still merge with it."""
        first = frame({"O1": {"deal_id": "1", "other_contact_ids": None}, "O2": {"deal_id": "2"}})
        first["other_contact_ids"] = first["other_contact_ids"].astype(float)  # all NaN, as pandas makes it
        baseline.commit(first, "run1")
        baseline.commit(
            frame({"O1": {"deal_id": "1", "other_contact_ids": "P2;P3"}, "O3": {"deal_id": "3"}}), "run2"
        )
        baseline.commit(frame({"O2": {"other_contact_ids": "P7"}}), "run3")
        df = baseline.load()
        assert df.loc["O1", "other_contact_ids"] == "P2;P3"
        assert df.loc["O2", "other_contact_ids"] == "P7"
        assert pd.isna(df.loc["O3", "other_contact_ids"])
        assert (df.loc["O1", "deal_id"], df.loc["O2", "deal_id"]) == ("1", "2")

    def test_commit_accepts_opportunity_id_column(self, baseline):
        updates = pd.DataFrame([{"opportunity_id": "O1", "stage": "Prospect"}])
        baseline.commit(updates, "run1")
        assert baseline.load().loc["O1", "stage"] == "Prospect"

    def test_recommit_same_run_is_idempotent(self, baseline):
        updates = frame({"O1": {"stage": "Prospect"}, "O2": {"stage": "Qualified"}})
        baseline.commit(updates, "run1", synced_at=T0)
        first = baseline.load()
        baseline.commit(updates, "run1", synced_at=T0)
        pd.testing.assert_frame_equal(baseline.load(), first)
        assert baseline.history() == ["state/AWS/baseline/run1.parquet"]

    def test_history_versions_and_restore(self, baseline):
        baseline.commit(frame({"O1": {"stage": "Prospect"}}), "run1")
        baseline.commit(frame({"O1": {"stage": "Qualified"}}), "run2")
        assert baseline.history() == ["state/AWS/baseline/run1.parquet", "state/AWS/baseline/run2.parquet"]
        assert baseline.load_version("run1").loc["O1", "stage"] == "Prospect"
        baseline.restore("run1", "rollback1")
        assert baseline.load().loc["O1", "stage"] == "Prospect"
        assert "state/AWS/baseline/rollback1.parquet" in baseline.history()
        with pytest.raises(NotFoundError):
            baseline.restore("never", "rollback2")

    def test_empty_updates_write_nothing(self, baseline):
        key = baseline.commit(frame({}), "run1")
        assert key == "cosell/state/AWS/baseline.parquet"
        assert baseline.history() == []

    @pytest.mark.parametrize(
        "updates",
        [
            pytest.param(
                pd.DataFrame({"stage": ["a", "b"]}, index=pd.Index(["O1", "O1"], name="opportunity_id")),
                id="dupes",
            ),
            pytest.param(
                pd.DataFrame({"stage": ["a"]}, index=pd.Index([None], name="opportunity_id")), id="null-id"
            ),
            pytest.param(pd.DataFrame({"stage": ["a"]}, index=["O1"]), id="unnamed-index"),
        ],
    )
    def test_rejects_ambiguous_updates(self, baseline, updates):
        with pytest.raises(ValueError, match="opportunity"):
            baseline.commit(updates, "run1")

    def test_concurrent_commit_is_detected(self, baseline, monkeypatch):
        baseline.commit(frame({"O1": {"stage": "Prospect"}}), "run1")
        real = baseline.snapshots.get_table_with_etag

        def read_then_someone_else_commits(key, columns=None):
            result = real(key, columns)
            baseline.snapshots.put_frame(frame({"O9": {"stage": "x"}}), baseline.current_key)
            return result

        monkeypatch.setattr(baseline.snapshots, "get_table_with_etag", read_then_someone_else_commits)
        with pytest.raises(ConflictError, match="overlap"):
            baseline.commit(frame({"O2": {"stage": "Qualified"}}), "run2")


class TestWatermarkStore:
    def test_advance_only_forward(self, ddb):
        wm = WatermarkStore(ddb, STATE)
        assert wm.get("AWS", "hubspot") is None
        assert wm.advance("AWS", "hubspot", T0, "run1") is True
        assert wm.get("AWS", "hubspot") == T0
        assert wm.advance("AWS", "hubspot", T0, "run1-retry") is False  # same value: not moved
        assert wm.advance("AWS", "hubspot", T0 - timedelta(seconds=1), "old") is False
        assert wm.get("AWS", "hubspot") == T0
        later = T0 + timedelta(microseconds=1)
        assert wm.advance("AWS", "hubspot", later, "run2") is True
        assert wm.get("AWS", "hubspot") == later
        assert wm.get("AWS", "partner_central") is None  # sides are independent
        assert wm.get("Sandbox", "hubspot") is None  # and catalogs

    def test_reset_moves_backwards_or_clears(self, ddb):
        wm = WatermarkStore(ddb, STATE)
        wm.advance("AWS", "partner_central", T0, "run1")
        wm.reset("AWS", "partner_central", T0 - timedelta(days=1), "operator")
        assert wm.get("AWS", "partner_central") == T0 - timedelta(days=1)
        wm.reset("AWS", "partner_central", None, "operator")
        assert wm.get("AWS", "partner_central") is None

    @pytest.mark.parametrize(
        ("side", "value", "message"),
        [
            pytest.param("salesforce", T0, "unknown side", id="unknown-side"),
            pytest.param("hubspot", datetime(2026, 1, 1), "naive", id="naive-datetime"),
        ],
    )
    def test_rejects_bad_input(self, ddb, side, value, message):
        with pytest.raises(ValueError, match=message):
            WatermarkStore(ddb, STATE).advance("AWS", side, value, "run1")


class TestRetryQueue:
    def test_add_list_remove(self, ddb):
        q = RetryQueue(ddb, STATE, "AWS")
        err = ValidationError(
            "bad stage on O1", service="partner_central", code="ValidationException"
        ).to_dict()
        n = q.add(
            [
                {
                    "opportunity_id": "O1",
                    "reason": "FAILED",
                    "error": err,
                    "direction": "HUBSPOT_TO_PARTNER_CENTRAL",
                },
                {
                    "deal_id": "77",
                    "reason": "FAILED",
                    "error": None,
                    "direction": "HUBSPOT_TO_PARTNER_CENTRAL",
                },
                {
                    "opportunity_id": "O2",
                    "reason": "REVIEW_IN_PROGRESS",
                    "direction": "HUBSPOT_TO_PARTNER_CENTRAL",
                },
            ],
            run_id="run1",
        )
        assert n == 3
        items = {i["SK"]: i for i in q.list()}
        assert set(items) == {"OPP#O1", "OPP#O2", "DEAL#77"}
        assert items["OPP#O1"]["error"]["code"] == "ValidationException"
        assert items["OPP#O1"]["attempts"] == 1
        assert items["DEAL#77"]["error"] is None
        assert q.remove([items["OPP#O1"], "DEAL#77", {"opportunity_id": "O404"}]) == 3
        assert [i["SK"] for i in q.list()] == ["OPP#O2"]

    def test_readd_counts_attempts_once_per_run(self, ddb):
        q = RetryQueue(ddb, STATE, "AWS")
        item = {"opportunity_id": "O1", "reason": "FAILED", "direction": "PARTNER_CENTRAL_TO_HUBSPOT"}
        q.add([item], run_id="run1")
        first_seen = q.list()[0]["first_seen"]
        q.add([item], run_id="run1")  # retried task: same run
        assert q.list()[0]["attempts"] == 1
        q.add([item], run_id="run2")
        [stored] = q.list()
        assert stored["attempts"] == 2
        assert stored["first_seen"] == first_seen
        assert stored["last_run_id"] == "run2"

    def test_many_records_and_catalog_isolation(self, ddb):
        q = RetryQueue(ddb, STATE, "AWS")
        q.add([{"opportunity_id": f"O{i}", "reason": "FAILED"} for i in range(130)], run_id="r")
        assert len(q.list()) == 130
        assert RetryQueue(ddb, STATE, "Sandbox").list() == []
        assert q.remove(q.list()) == 130
        assert q.list() == []

    def test_item_without_id_is_rejected(self, ddb):
        with pytest.raises(ValueError, match="opportunity_id or a deal_id"):
            RetryQueue(ddb, STATE, "AWS").add([{"reason": "FAILED"}])


def conflict(
    field: str = "amount", hs: str = "100", pc: str = "200", hs_ts: str = "2026-02-18T10:00:00Z", **kw
):
    return {
        "opportunity_id": "O1",
        "deal_id": "1",
        "field": field,
        "hubspot_value": hs,
        "partner_central_value": pc,
        "hubspot_timestamp": hs_ts,
        "partner_central_timestamp": "2026-02-18T10:00:02Z",
        "detected_at": T0,
        **kw,
    }


class TestConflictStore:
    def test_open_is_idempotent_and_freezes_fields(self, ddb):
        store = ConflictStore(ddb, STATE, "AWS")
        created = store.open([conflict("amount"), conflict("closedate")], run_id="run1")
        assert {c["field"] for c in created} == {"amount", "closedate"}
        assert all(c["status"] == "PENDING" and c["conflict_id"].startswith("conf-") for c in created)
        assert store.open([conflict("amount"), conflict("closedate")], run_id="run1") == []
        assert len(store.pending()) == 2
        assert store.frozen_fields() == {("O1", "amount"), ("O1", "closedate")}

    def test_newer_conflict_updates_pending_one(self, ddb):
        store = ConflictStore(ddb, STATE, "AWS")
        [first] = store.open([conflict(hs="100")])
        store.set_task(first["conflict_id"], "task-9")
        newer = conflict(hs="150", hs_ts="2026-02-18T11:00:00Z", detected_at=T0 + timedelta(hours=1))
        assert store.open([newer]) == []
        [pending] = store.pending("O1")
        assert pending["conflict_id"] == first["conflict_id"]
        assert pending["hubspot_value"] == "150"
        assert pending["task_id"] == "task-9"
        # A late retry of an older detection does not overwrite the newer values.
        store.open([conflict(hs="100")])
        assert store.pending("O1")[0]["hubspot_value"] == "150"

    def test_pending_filters_by_opportunity_without_prefix_clash(self, ddb):
        store = ConflictStore(ddb, STATE, "AWS")
        store.open([conflict(), {**conflict(), "opportunity_id": "O10"}])
        assert [c["opportunity_id"] for c in store.pending("O1")] == ["O1"]
        assert len(store.pending()) == 2

    def test_resolve_then_new_conflict_reopens(self, ddb):
        store = ConflictStore(ddb, STATE, "AWS")
        [c] = store.open([conflict()])
        assert [x["conflict_id"] for x in store.awaiting_task()] == [c["conflict_id"]]
        resolved = store.resolve(
            c["conflict_id"], "USE_PARTNER_CENTRAL_VALUE", "confirmed on call", "owner:42"
        )
        assert resolved["status"] == "RESOLVED"
        assert resolved["resolved_value"] == "200"
        assert resolved["resolved_by"] == "owner:42"
        assert store.frozen_fields() == set()
        # Same resolution again (a retried task): returns the resolved item.
        assert (
            store.resolve(c["conflict_id"], "USE_PARTNER_CENTRAL_VALUE", "again", "owner:42")["status"]
            == "RESOLVED"
        )
        with pytest.raises(ConflictError):
            store.resolve(c["conflict_id"], "USE_HUBSPOT_VALUE", "changed my mind", "owner:42")
        # Re-running the run that detected it does not reopen the same occurrence...
        assert store.open([conflict()]) == []
        # ...but a new divergence on the field does.
        [again] = store.open([conflict(hs="300", hs_ts="2026-02-19T10:00:00Z")])
        assert again["conflict_id"] != c["conflict_id"]
        assert store.frozen_fields() == {("O1", "amount")}

    def test_resolve_errors(self, ddb):
        store = ConflictStore(ddb, STATE, "AWS")
        with pytest.raises(NotFoundError):
            store.resolve("conf-missing", "USE_HUBSPOT_VALUE", "r", "u")
        with pytest.raises(ValueError, match="resolution"):
            store.resolve("conf-missing", "FLIP_A_COIN", "r", "u")
