from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import pydantic
import pytest
from botocore.exceptions import ClientError

from cosell_sync.audit import AuditEntry, AuditTrail, RunReport, entries_to_frame, summarise
from cosell_sync.bootstrap import ensure_storage
from cosell_sync.errors import ThrottledError
from cosell_sync.storage import SnapshotStore

AUDIT = "cosell-audit"
BUCKET = "cosell-test"
T0 = datetime(2026, 2, 18, 10, tzinfo=UTC)


@pytest.fixture
def clients(aws_endpoint):
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    ensure_storage(s3, ddb, BUCKET, AUDIT, "cosell-state")
    return s3, ddb


@pytest.fixture
def trail(clients):
    return AuditTrail(clients[1], AUDIT, retention_days=2555)


def entry(run: int = 1, *, action: str = "UPDATE_OPPORTUNITY", changes=None, success: bool = True, **kw):
    return AuditEntry(
        opportunity_id=kw.pop("opportunity_id", "O1"),
        deal_id="1",
        run_id=f"scheduled__run{run}",
        run_timestamp=T0 + timedelta(hours=run),
        direction=kw.pop("direction", "HUBSPOT_TO_PARTNER_CENTRAL"),
        action=action,
        source="HUBSPOT",
        changes=changes if changes is not None else {"stage": {"old": f"s{run - 1}", "new": f"s{run}"}},
        success=success,
        apiCalls=["UpdateOpportunity"],
        syncDurationMs=1250,
        metadata={"dagId": "cosell_reconcile", "triggeredBy": "schedule"},
        **kw,
    )


class TestAuditEntry:
    def test_keys_are_deterministic_from_the_run(self):
        e = entry(1)
        assert e.pk == "O1"
        assert (
            e.sk
            == "2026-02-18T11:00:00.000000Z#scheduled__run1#HUBSPOT_TO_PARTNER_CENTRAL#UPDATE_OPPORTUNITY"
        )
        assert entry(1).sk == e.sk

    def test_deal_partition_before_an_opportunity_exists(self):
        e = entry(opportunity_id=None, action="CREATE_OPPORTUNITY", success=False)
        assert e.pk == "deal#1"

    def test_record_shape_matches_the_audit_schema(self):
        record = entry(1, error={"code": "X"}).to_record(retention_days=10)
        assert record["changes"] == {"stage": {"old": "s0", "new": "s1"}}
        assert record["syncDurationMs"] == 1250
        assert record["apiCalls"] == ["UpdateOpportunity"]
        assert record["metadata"] == {
            "runId": "scheduled__run1",
            "dealId": "1",
            "dagId": "cosell_reconcile",
            "triggeredBy": "schedule",
        }
        assert record["user"] == "airflow:cosell_reconcile"
        assert record["ttl"] == int((T0 + timedelta(hours=1, days=10)).timestamp())

    @pytest.mark.parametrize(
        "overrides",
        [
            pytest.param({"user": "rep@partner.com"}, id="email-user"),
            pytest.param({"metadata": {"owner": "Jane <jane@x.io>"}}, id="email-metadata"),
            pytest.param({"run_timestamp": datetime(2026, 2, 18)}, id="naive-time"),
            pytest.param({"direction": "A#B"}, id="hash-in-key-part"),
            pytest.param({"action": "update"}, id="lower-case-action"),
            pytest.param({"opportunity_id": None, "deal_id": None}, id="no-record"),
            pytest.param({"source": "SALESFORCE"}, id="unknown-source"),
        ],
    )
    def test_rejects(self, overrides):
        base = entry(1).model_dump()
        with pytest.raises(pydantic.ValidationError):
            AuditEntry(**{**base, **overrides})


class TestAuditTrail:
    def test_write_is_idempotent(self, trail, clients):
        entries = [
            entry(1),
            entry(1, direction="PARTNER_CENTRAL_TO_HUBSPOT"),
            entry(1, action="SUBMIT_OPPORTUNITY"),
        ]
        assert trail.write(entries) == 3
        assert trail.write([*entries, entries[0]]) == 3  # retried task; duplicates in one batch collapse
        assert clients[1].scan(TableName=AUDIT)["Count"] == 3

    def test_values_serialised(self, trail):
        trail.write(
            [entry(1, changes={"amount": {"old": None, "new": 1.5}, "flag": {"old": True, "new": False}})]
        )
        [item] = trail.history("O1")
        assert item["changes"]["amount"] == {"old": None, "new": 1.5}
        assert item["changes"]["flag"] == {"old": True, "new": False}
        assert isinstance(item["ttl"], int)
        assert not any(isinstance(v, Decimal) for v in item.values())

    def test_write_many_in_chunks(self, trail):
        entries = [entry(1, opportunity_id=f"O{i}") for i in range(60)]
        assert trail.write(entries) == 60
        assert len(trail.history("O59")) == 1

    def test_write_still_throttled_after_retries_fails_typed(self, trail, monkeypatch):
        def throttled(**kwargs):
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, "PutItem")

        monkeypatch.setattr(trail.ddb, "put_item", throttled)
        with pytest.raises(ThrottledError):
            trail.write([entry(1)])

    def test_history_newest_first_limited_and_windowed(self, trail):
        trail.write([entry(r) for r in range(1, 8)])
        history = trail.history("O1", limit=3)
        assert [h["metadata"]["runId"] for h in history] == [
            "scheduled__run7",
            "scheduled__run6",
            "scheduled__run5",
        ]
        window = trail.history("O1", limit=None, start=T0 + timedelta(hours=2), end=T0 + timedelta(hours=4))
        assert [h["timestamp"][:13] for h in window] == ["2026-02-18T14", "2026-02-18T13", "2026-02-18T12"]
        assert trail.history("O404") == []

    def test_state_at_replays_successful_applied_changes(self, trail):
        trail.write(
            [
                AuditEntry(
                    deal_id="1",
                    run_id="r0",
                    run_timestamp=T0,
                    direction="HUBSPOT_TO_PARTNER_CENTRAL",
                    action="CREATE_OPPORTUNITY",
                    source="HUBSPOT",
                    changes={"amount": {"old": None, "new": "10"}},
                    success=False,
                ),
                entry(
                    1,
                    action="CREATE_OPPORTUNITY",
                    changes={"stage": {"old": None, "new": "s1"}, "amount": {"old": None, "new": "10"}},
                ),
                entry(2),
                entry(3, success=False),  # failed: not applied
                entry(4, action="CONFLICT_DETECTED", changes={"amount": {"old": "10", "new": "99"}}),
                entry(5),
            ]
        )
        assert trail.state_at("O1", T0 + timedelta(hours=1)) == {"stage": "s1", "amount": "10"}
        assert trail.state_at("O1", T0 + timedelta(hours=4, minutes=30)) == {"stage": "s2", "amount": "10"}
        assert trail.state_at("O1", T0 + timedelta(hours=5)) == {"stage": "s5", "amount": "10"}
        assert trail.state_at("O1", T0) == {}
        assert trail.retention_days == 2555

    def test_retention_must_be_positive(self, clients):
        with pytest.raises(ValueError, match="retention_days"):
            AuditTrail(clients[1], AUDIT, retention_days=0)


class TestRunReport:
    def test_changes_and_report(self, clients):
        report = RunReport(SnapshotStore(clients[0], BUCKET, "cosell"), "AWS", "scheduled__run1")
        entries = [entry(1), entry(1, action="SKIPPED", changes={})]
        key = report.write_changes(entries)
        assert key == "cosell/runs/AWS/scheduled__run1/changes.parquet"
        changes = report.read_changes()
        assert changes[["action", "field", "old", "new"]].astype(object).where(
            changes.notna(), None
        ).values.tolist() == [
            ["UPDATE_OPPORTUNITY", "stage", "s0", "s1"],
            ["SKIPPED", None, None, None],
        ]
        assert (
            report.write_report({"summary": summarise(entries)})
            == "cosell/runs/AWS/scheduled__run1/report.json"
        )
        doc = report.read_report()
        assert doc["run_id"] == "scheduled__run1"
        assert doc["summary"] == {
            "entries": 2,
            "failed": 0,
            "by_action": {"SKIPPED": 1, "UPDATE_OPPORTUNITY": 1},
            "api_calls": 2,
        }

    def test_entries_audited_later_are_added_once_to_a_dead_runs_change_set(self, clients):
        """A run that died before its commit gets a change set from the run that audits its writes."""
        report = RunReport(SnapshotStore(clients[0], BUCKET, "cosell"), "AWS", "scheduled__dead")
        first = [entry(1, opportunity_id="O1")]
        report.add_changes(first)  # no change set yet: created
        report.add_changes(first)  # the auditing commit retried: nothing added twice
        report.add_changes([entry(1, opportunity_id="O2", changes={"stage": {"old": "s0", "new": "s2"}})])
        changes = report.read_changes()
        assert changes[["opportunity_id", "field", "new"]].values.tolist() == [
            ["O1", "stage", "s1"],
            ["O2", "stage", "s2"],
        ]

    def test_entries_to_frame_empty(self):
        assert list(entries_to_frame([]).columns)[:2] == ["opportunity_id", "deal_id"]
