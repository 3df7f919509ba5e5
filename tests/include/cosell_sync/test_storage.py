from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import boto3
import pandas as pd
import pytest

from cosell_sync.errors import NotFoundError, ThrottledError
from cosell_sync.storage import (
    SnapshotStore,
    StepState,
    batch_write,
    from_item,
    query_all,
    run_key,
    to_item,
    utc_iso,
)

BUCKET = "cosell-test"


@pytest.fixture
def s3(aws_endpoint):
    client = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def store(s3):
    return SnapshotStore(s3, BUCKET, "cosell-sync/")


class TestRunKey:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            pytest.param("extract_pc", "runs/AWS/manual__1/extract_pc.parquet", id="parquet-default"),
            pytest.param("report.json", "runs/AWS/manual__1/report.json", id="extension-kept"),
        ],
    )
    def test_layout(self, name, expected):
        assert run_key("AWS", "manual__1", name) == expected

    @pytest.mark.parametrize("run_id", ["", "a/b", ".."])
    def test_rejects_key_breaking_parts(self, run_id):
        with pytest.raises(ValueError, match="run_id"):
            run_key("AWS", run_id, "x")


class TestSnapshotStore:
    def test_frame_round_trip_keeps_index_and_nulls(self, store, s3):
        df = pd.DataFrame(
            {"stage": ["Prospect", None], "amount": ["100", "2.5"]},
            index=pd.Index(["O1", "O2"], name="opportunity_id"),
        )
        key = store.put_frame(df, run_key("AWS", "r1", "plan"))
        assert key == "cosell-sync/runs/AWS/r1/plan.parquet"
        assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0
        back = store.get_frame("runs/AWS/r1/plan.parquet")
        assert back.index.name == "opportunity_id"
        assert back.index.tolist() == ["O1", "O2"]
        assert back.loc["O1", "stage"] == "Prospect"
        assert pd.isna(back.loc["O2", "stage"])

    def test_column_projection(self, store):
        df = pd.DataFrame({"a": ["1"], "b": ["2"]}, index=pd.Index(["O1"], name="opportunity_id"))
        store.put_frame(df, "x.parquet")
        back = store.get_frame("x.parquet", columns=["b"])
        assert list(back.columns) == ["b"]
        assert back.index.name == "opportunity_id"

    def test_every_column_but_the_excluded_ones(self, store):
        df = pd.DataFrame(
            {"a": ["1"], "_raw": ['{"Id": "O1"}'], "b": ["2"]}, index=pd.Index(["O1"], name="opportunity_id")
        )
        store.put_frame(df, "x.parquet")
        back = store.get_frame("x.parquet", exclude=["_raw"])
        assert list(back.columns) == ["a", "b"]
        assert back.index.tolist() == ["O1"]
        assert back.index.name == "opportunity_id"

    def test_json_round_trip(self, store):
        ts = datetime(2026, 2, 18, 10, tzinfo=UTC)
        key = store.put_json({"count": 3, "at": ts}, "runs/AWS/r1/report.json")
        assert key == "cosell-sync/runs/AWS/r1/report.json"
        assert store.get_json("runs/AWS/r1/report.json") == {"count": 3, "at": str(ts)}

    def test_exists_and_missing(self, store):
        assert not store.exists("nope.json")
        store.put_json({}, "yes.json")
        assert store.exists("yes.json")
        with pytest.raises(NotFoundError, match=r"nope\.json"):
            store.get_json("nope.json")
        with pytest.raises(NotFoundError):
            store.get_frame("nope.parquet")

    def test_empty_prefix_and_listing(self, s3):
        bare = SnapshotStore(s3, BUCKET, "")
        bare.put_json({}, "a/1.json")
        bare.put_json({}, "a/2.json")
        bare.put_json({}, "ab/3.json")
        assert sorted(o["key"] for o in bare.list_keys("a")) == ["a/1.json", "a/2.json"]

    def test_copy(self, store):
        store.put_json({"v": 1}, "src.json")
        assert store.copy("src.json", "dst.json") == "cosell-sync/dst.json"
        assert store.get_json("dst.json") == {"v": 1}
        with pytest.raises(NotFoundError):
            store.copy("missing.json", "dst2.json")


class TestStepState:
    def test_nothing_stored_yet_is_a_first_run(self, store):
        assert StepState(store, "AWS", "insights").load() == (None, {})

    def test_round_trip_at_the_per_catalog_keys(self, store):
        state = StepState(store, "Sandbox", "engagements")
        df = pd.DataFrame({"stage": ["Prospect"]}, index=pd.Index(["O1"], name="opportunity_id"))
        assert state.save_frame(df) == "cosell-sync/state/Sandbox/engagements.parquet"
        assert (
            state.save_meta({"last_full_refresh": "2026-02-18"})
            == "cosell-sync/state/Sandbox/engagements.json"
        )
        frame, meta = StepState(store, "Sandbox", "engagements").load()
        assert frame is not None
        assert frame.loc["O1", "stage"] == "Prospect"
        assert meta == {"last_full_refresh": "2026-02-18"}
        # Another catalog's or step's state is separate.
        assert StepState(store, "AWS", "engagements").load() == (None, {})
        assert StepState(store, "Sandbox", "insights").load() == (None, {})

    def test_frame_without_its_document_is_not_trusted(self, store):
        state = StepState(store, "AWS", "insights")
        state.save_frame(pd.DataFrame({"a": ["1"]}, index=pd.Index(["O1"])))
        assert state.load() == (None, {})

    @pytest.mark.parametrize("catalog", ["", "AWS/x", ".."])
    def test_rejects_key_breaking_catalog(self, store, catalog):
        with pytest.raises(ValueError, match="catalog"):
            StepState(store, catalog, "insights")


class TestUtcIso:
    def test_fixed_width_utc(self):
        plus2 = timezone(timedelta(hours=2))
        assert utc_iso(datetime(2026, 2, 18, 12, 0, tzinfo=plus2)) == "2026-02-18T10:00:00.000000Z"

    def test_rejects_naive(self):
        with pytest.raises(ValueError, match="naive"):
            utc_iso(datetime(2026, 2, 18))


class TestDynamoPrimitives:
    @pytest.fixture
    def ddb(self, aws_endpoint):
        client = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
        client.create_table(
            TableName="t",
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        return client

    def test_item_round_trip(self):
        obj = {"s": "x", "n": 3, "f": 1.5, "none": None, "m": {"a": [1, "b"]}, "b": True}
        assert from_item(to_item(obj)) == obj

    def test_batch_write_chunks_and_pages(self, ddb):
        requests = [{"PutRequest": {"Item": to_item({"PK": "p", "SK": f"{i:04d}"})}} for i in range(60)]
        assert batch_write(ddb, "t", requests) == 60
        items = list(
            query_all(
                ddb,
                TableName="t",
                KeyConditionExpression="PK = :p",
                ExpressionAttributeValues={":p": {"S": "p"}},
                Limit=7,  # forces several pages
            )
        )
        assert len(items) == 60

    def test_batch_write_retries_unprocessed(self, ddb, monkeypatch):
        monkeypatch.setattr("cosell_sync.storage._backoff", lambda attempt: None)
        real = ddb.batch_write_item
        calls = []

        def flaky(RequestItems):
            calls.append(len(RequestItems["t"]))
            if len(calls) == 1:  # the first call processes only the first item
                real(RequestItems={"t": RequestItems["t"][:1]})
                return {"UnprocessedItems": {"t": RequestItems["t"][1:]}}
            return real(RequestItems=RequestItems)

        monkeypatch.setattr(ddb, "batch_write_item", flaky)
        requests = [{"PutRequest": {"Item": to_item({"PK": "p", "SK": str(i)})}} for i in range(3)]
        assert batch_write(ddb, "t", requests) == 3
        assert calls == [3, 2]
        assert ddb.scan(TableName="t")["Count"] == 3

    def test_batch_write_gives_up_with_typed_error(self, ddb, monkeypatch):
        monkeypatch.setattr("cosell_sync.storage._backoff", lambda attempt: None)
        monkeypatch.setattr(ddb, "batch_write_item", lambda RequestItems: {"UnprocessedItems": RequestItems})
        with pytest.raises(ThrottledError, match="unprocessed"):
            batch_write(ddb, "t", [{"PutRequest": {"Item": to_item({"PK": "p", "SK": "1"})}}], max_attempts=2)
