"""The audit trail is append-only: conditional puts, retries add nothing, an entry is never replaced."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import boto3
import pytest

from cosell_sync.audit import AuditEntry, AuditTrail
from cosell_sync.bootstrap import ensure_storage
from cosell_sync.storage import SnapshotStore

AUDIT = "immutable-audit"
BUCKET = "immutable-bucket"
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def clients(aws_endpoint):
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    ensure_storage(s3, ddb, BUCKET, AUDIT, "immutable-state")
    return s3, ddb


@pytest.fixture
def trail(clients):
    return AuditTrail(clients[1], AUDIT, 2555, SnapshotStore(clients[0], BUCKET, "p"))


def entry(oid: str = "O1", new: str = "Proposal", **metadata) -> AuditEntry:
    return AuditEntry(
        opportunity_id=oid,
        deal_id="11",
        run_id="scheduled__2026-03-01T09:30:00+00:00",
        run_timestamp=T0,
        direction="HUBSPOT_TO_PARTNER_CENTRAL",
        action="UPDATE_OPPORTUNITY",
        source="HUBSPOT",
        changes={"stage": {"old": "Qualified", "new": new}},
        apiCalls=["UpdateOpportunity"],
        metadata={"dagId": "cosell_reconcile", **metadata},
    )


def items(ddb) -> list[dict]:
    return ddb.scan(TableName=AUDIT, ConsistentRead=True)["Items"]


def test_a_retried_write_of_the_same_entries_succeeds_without_copies(trail, clients, caplog):
    entries = [entry(f"O{i}") for i in range(30)]
    assert trail.write(entries) == 30
    before = {(i["PK"]["S"], i["SK"]["S"]): i for i in items(clients[1])}

    with caplog.at_level(logging.INFO, logger="cosell_sync.audit"):
        assert trail.write(entries) == 30  # the retried task: no error
    after = {(i["PK"]["S"], i["SK"]["S"]): i for i in items(clients[1])}
    assert after == before  # no copy, nothing changed
    assert len(after) == 30
    # Recognised as the same entries, not as refused different versions.
    assert "0 entries written" in caplog.text
    assert "30 already there" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_different_entry_under_an_existing_key_is_refused_and_the_first_kept(trail, clients, caplog):
    trail.write([entry(new="Proposal")])

    with caplog.at_level(logging.WARNING, logger="cosell_sync.audit"):
        assert trail.write([entry(new="Committed"), entry("O2")]) == 2

    [kept] = trail.history("O1")
    assert kept["changes"]["stage"] == {"old": "Qualified", "new": "Proposal"}
    assert len(items(clients[1])) == 2  # O2 was still written
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "1 entries not written" in warning
    assert "append-only" in warning
    assert "Committed" not in caplog.text  # keys in the log, never values


def test_every_put_is_conditional_and_nothing_updates_or_deletes(trail, monkeypatch):
    sent: list[tuple[str, dict]] = []
    for name in ("put_item", "batch_write_item", "update_item", "delete_item", "transact_write_items"):
        real = getattr(trail.ddb, name)

        def spy(*args, _name=name, _real=real, **kwargs):
            sent.append((_name, kwargs))
            return _real(*args, **kwargs)

        monkeypatch.setattr(trail.ddb, name, spy)

    trail.write([entry(f"O{i}") for i in range(5)])
    trail.write([entry("O1")])

    assert {name for name, _ in sent} == {"put_item"}
    assert all(kw["ConditionExpression"] == "attribute_not_exists(PK)" for _, kw in sent)


def test_two_conflicts_of_one_record_in_one_run_are_two_entries(trail):
    def conflict(field: str, conflict_id: str) -> AuditEntry:
        return AuditEntry(
            opportunity_id="O1",
            deal_id="11",
            run_id="manual__1",
            run_timestamp=T0,
            direction="CONFLICT",
            action="CONFLICT_DETECTED",
            source="HUBSPOT",
            changes={field: {"old": "a", "new": "b"}},
            metadata={"conflictId": conflict_id},
        )

    first, second = conflict("stage", "c-1"), conflict("next_steps", "c-2")
    assert first.sk != second.sk
    assert first.sk.startswith(f"{entry().sk.split('#')[0]}#manual__1#CONFLICT#CONFLICT_DETECTED#")
    assert trail.write([first, second]) == 2
    assert {next(iter(h["changes"])) for h in trail.history("O1")} == {"stage", "next_steps"}


def test_an_oversized_entry_keeps_its_offloaded_values_when_a_different_version_is_refused(trail):
    big = "x" * 350_000
    trail.write([entry(new=big)])
    trail.write([entry(new="y" * 350_000)])  # a second version: refused, and its S3 object is its own

    [kept] = trail.history("O1")
    assert kept["changes"]["stage"]["new"] == big
