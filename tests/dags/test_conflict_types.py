"""The four conflict types, their HubSpot tasks and SNS announcements, and ``CUSTOM_VALUE`` resolutions.

End to end with ``dag.test()`` against both emulators and moto (S3, DynamoDB, SNS and an SQS queue
subscribed to the topic, which is how the test reads what was announced).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from scenarios import (
    approved,
    canonical_hs,
    canonical_pc,
    config_with,
    editable,
    set_hs,
    set_pc,
    synced_book,
    writes,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

DEAL_OWNER = "75480756"  # seeded owners of the HubSpot emulator
DEFAULT_OWNER = "75480758"
HEADERS = {"Authorization": "Bearer test-token"}


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def _conflicts(stack: Any) -> Any:
    from cosell_sync.config import load_config
    from cosell_sync.conflict_store import ConflictStore

    return ConflictStore(stack.aws("dynamodb"), load_config().storage.state_table, "AWS")


def _topic_with_queue(stack: Any) -> tuple[str, str]:
    """An SNS topic in moto with an SQS queue subscribed (raw delivery off: the SNS envelope)."""
    sns, sqs = stack.aws("sns"), stack.aws("sqs")
    topic = sns.create_topic(Name="cosell-conflicts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="cosell-conflicts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue_url


def _announced(stack: Any, queue_url: str) -> list[str]:
    """Every SNS message body the queue received so far (drained)."""
    sqs = stack.aws("sqs")
    out: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages") or []
        if not messages:
            return out
        for m in messages:
            out.append(json.loads(m["Body"])["Message"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def _task(stack: Any, task_id: str) -> dict[str, Any]:
    r = requests.get(
        f"{stack.hs_url}/crm/v3/objects/tasks/{task_id}",
        params={"properties": "hs_task_body,hubspot_owner_id,hs_task_status"},
        headers=HEADERS,
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["properties"]


# ---------------------------------------------------------------------------------------------------
# the four types, tasks and announcements
# ---------------------------------------------------------------------------------------------------
def test_each_conflict_type_is_recorded_with_its_task_and_announced_once(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    """One run meets all four types on four records; each gets a typed conflict, a task, one SNS message."""
    from cosell_sync import reconcile

    topic, queue_url = _topic_with_queue(sync_stack)
    config_with(
        tmp_path,
        monkeypatch,
        {
            "default_strategy": "last_write_wins",
            "field_strategies": {},
            "manual_resolution": ["next_steps"],
            "default_task_owner_id": DEFAULT_OWNER,
            "sns_topic_arn": topic,
        },
    )
    ids = synced_book(sync_stack)
    simultaneous, rejected, stale = editable(sync_stack, ids)[:3]
    locked = approved(sync_stack, ids)
    title_before = canonical_pc(sync_stack, locked)["project_title"]

    # SIMULTANEOUS_UPDATE: both sides changed the manual field since the last sync.
    set_pc(sync_stack, simultaneous, {"next_steps": "Partner Central plan"})
    set_hs(sync_stack, simultaneous, {"next_steps": "HubSpot plan"})
    sync_stack.update_deal(
        sync_stack.deal_by_opportunity(simultaneous)["id"], {"hubspot_owner_id": DEAL_OWNER}
    )
    # REJECTED_VALUE: LifeCycle.NextSteps takes at most 255 characters; Partner Central says so.
    too_long = " ".join(["Call the customer back"] * 15)
    set_hs(sync_stack, rejected, {"next_steps": too_long})
    # LOCKED_FIELD: the title cannot change once AWS approved the opportunity.
    set_hs(sync_stack, locked, {"project_title": "Renamed after approval"})
    # STALE_DATA: HubSpot changed next steps; the console changes them while the sync writes.
    set_hs(sync_stack, stale, {"next_steps": "HubSpot next steps"})
    real_apply = reconcile.apply_partner_central

    def racing_apply(env: Any, run: Any, planned: Any, creates: Any = None) -> Any:
        set_pc(sync_stack, stale, {"next_steps": "Console next steps meanwhile"})
        return real_apply(env, run, planned, creates)

    monkeypatch.setattr(reconcile, "apply_partner_central", racing_apply)
    # The rejected write is a record error: the run commits and its report fails.
    sync_stack.run(expect="failed_at_report")
    monkeypatch.setattr(reconcile, "apply_partner_central", real_apply)

    store = _conflicts(sync_stack)
    pending = {c["opportunity_id"]: c for c in store.pending()}
    assert {oid: (c["field"], c["conflict_type"]) for oid, c in pending.items()} == {
        simultaneous: ("next_steps", "SIMULTANEOUS_UPDATE"),
        rejected: ("next_steps", "REJECTED_VALUE"),
        locked: ("project_title", "LOCKED_FIELD"),
        stale: ("next_steps", "STALE_DATA"),
    }
    expected_values = {
        simultaneous: ("HubSpot plan", "Partner Central plan"),
        rejected: (too_long, canonical_pc(sync_stack, rejected)["next_steps"]),
        locked: ("Renamed after approval", title_before),
        stale: ("HubSpot next steps", "Console next steps meanwhile"),
    }
    for oid, (hs_value, pc_value) in expected_values.items():
        assert (pending[oid]["hubspot_value"], pending[oid]["partner_central_value"]) == (hs_value, pc_value)
        assert pending[oid]["hubspot_timestamp"]
        assert pending[oid]["partner_central_timestamp"]

    # Existing behaviour is kept: the locked title went back to HubSpot, nothing was overwritten in PC.
    assert canonical_hs(sync_stack, locked)["project_title"] == title_before
    assert canonical_pc(sync_stack, locked)["project_title"] == title_before
    assert canonical_pc(sync_stack, stale)["next_steps"] == "Console next steps meanwhile"
    assert sync_stack.deal_by_opportunity(rejected)["properties"]["aws_sync_error"]

    # Each conflict is in the audit trail with its type.
    for oid, conflict in pending.items():
        (entry,) = [e for e in sync_stack.audit(oid) if e["action"] == "CONFLICT_DETECTED"]
        assert entry["metadata"]["conflictType"] == conflict["conflict_type"]
        assert conflict["conflict_id"] in entry["metadata"]["conflictIds"]

    # Tasks: both values and both times, for the deal owner, else the configured default owner.
    for oid, conflict in pending.items():
        task = _task(sync_stack, conflict["task_id"])
        body = task["hs_task_body"]
        for part in (
            conflict["conflict_id"],
            conflict["hubspot_timestamp"],
            conflict["partner_central_timestamp"],
        ):
            assert part in body
        hs_value, pc_value = expected_values[oid]
        assert f"HubSpot value: {hs_value}" in body
        assert f"AWS Partner Central value: {pc_value}" in body
        deal_owner = sync_stack.deal_by_opportunity(oid, ["hubspot_owner_id"])["properties"].get(
            "hubspot_owner_id"
        )
        assert task["hubspot_owner_id"] == (deal_owner or DEFAULT_OWNER)
    assert _task(sync_stack, pending[simultaneous]["task_id"])["hubspot_owner_id"] == DEAL_OWNER

    # SNS: one message per new conflict, ids, type and times, never a value.
    messages = _announced(sync_stack, queue_url)
    assert len(messages) == 4
    announced = {json.loads(m)["conflictId"]: json.loads(m) for m in messages}
    assert set(announced) == {c["conflict_id"] for c in pending.values()}
    for conflict in pending.values():
        message = announced[conflict["conflict_id"]]
        assert message["conflictType"] == conflict["conflict_type"]
        assert (message["opportunityId"], message["field"]) == (conflict["opportunity_id"], conflict["field"])
        assert message["dealId"] == conflict["deal_id"]
        assert message["hubspotTimestamp"] == conflict["hubspot_timestamp"]
        assert message["partnerCentralTimestamp"] == conflict["partner_central_timestamp"]
    raw = "\n".join(messages)
    for hs_value, pc_value in expected_values.values():
        assert hs_value not in raw
        assert pc_value not in raw

    # The next run finds the same conflicts pending: nothing announced again. The two competing values
    # stay frozen; the rejected value is not frozen (the record is retried, and fails again, until fixed).
    sync_stack.run(expect="failed_at_report")
    assert _announced(sync_stack, queue_url) == []
    assert {c["conflict_id"] for c in store.pending()} == set(announced)
    assert store.frozen_fields() == {(simultaneous, "next_steps"), (stale, "next_steps")}

    # Fixed in HubSpot, the value reaches Partner Central: the rejected-value conflict closes by itself
    # and its task is done; the others still wait for a person.
    set_hs(sync_stack, rejected, {"next_steps": "Call the customer back"})
    sync_stack.run()
    assert canonical_pc(sync_stack, rejected)["next_steps"] == "Call the customer back"
    closed = store.get(pending[rejected]["conflict_id"])
    assert (closed["status"], closed["resolution"]) == ("RESOLVED", "SUPERSEDED")
    assert _task(sync_stack, pending[rejected]["task_id"])["hs_task_status"] == "COMPLETED"
    assert {c["opportunity_id"] for c in store.pending()} == {simultaneous, locked, stale}


# ---------------------------------------------------------------------------------------------------
# CUSTOM_VALUE
# ---------------------------------------------------------------------------------------------------
def test_custom_value_is_written_to_both_systems_and_audited(
    sync_stack: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    """CUSTOM_VALUE without a value fails at once (no retry, nothing written); with one, both sides get it."""
    config_with(
        tmp_path,
        monkeypatch,
        {"default_strategy": "last_write_wins", "field_strategies": {}, "manual_resolution": ["next_steps"]},
    )
    ids = synced_book(sync_stack)
    oid = editable(sync_stack, ids)[0]
    set_pc(sync_stack, oid, {"next_steps": "Partner Central plan"})
    set_hs(sync_stack, oid, {"next_steps": "HubSpot plan"})
    sync_stack.run()
    store = _conflicts(sync_stack)
    (conflict,) = store.pending(oid)
    conf = {
        "conflict_id": conflict["conflict_id"],
        "resolution": "CUSTOM_VALUE",
        "reason": "agreed a third wording with the customer",
        "resolved_by": "hs-owner-4711",
    }

    # 1. no custom_value: the task fails on its first try (a retry could not fix it), nothing is written
    dag = sync_stack.dag("cosell_resolve_conflict")
    for t in dag.tasks:
        t.retries = 1  # would show up_for_retry if the failure were treated as transient
    sync_stack.reset_calls()
    run = dag.test(run_conf=conf)
    (ti,) = run.get_task_instances()
    assert (str(getattr(ti.state, "value", ti.state)), ti.try_number) == ("failed", 1)
    assert writes(sync_stack) == ({}, [])
    assert store.get(conflict["conflict_id"])["status"] == "PENDING"

    # 2. with a custom value: both systems hold it, the baseline moved, audited, task completed
    custom = "Workshop on 12 May, then a pilot"
    sync_stack.run("cosell_resolve_conflict", conf={**conf, "custom_value": custom})
    assert canonical_pc(sync_stack, oid)["next_steps"] == custom
    assert canonical_hs(sync_stack, oid)["next_steps"] == custom
    resolved = store.get(conflict["conflict_id"])
    assert (resolved["status"], resolved["resolution"], resolved["resolved_value"]) == (
        "RESOLVED",
        "CUSTOM_VALUE",
        custom,
    )
    entries = [e for e in sync_stack.audit(oid) if e["action"] == "CONFLICT_RESOLVED"]
    assert {e["direction"]: e["changes"]["next_steps"] for e in entries} == {
        "hubspot_to_partner_central": {"old": "Partner Central plan", "new": custom},
        "partner_central_to_hubspot": {"old": "HubSpot plan", "new": custom},
    }
    assert all(e["metadata"]["resolution"] == "CUSTOM_VALUE" for e in entries)
    assert all(e["user"] == "hs-owner-4711" for e in entries)
    assert _task(sync_stack, conflict["task_id"])["hs_task_status"] == "COMPLETED"
    assert sync_stack.deal_by_opportunity(oid)["properties"]["aws_conflict_status"] == "Resolved"

    # 3. the next reconcile writes nothing: both sides and the baseline agree on the custom value
    sync_stack.reset_calls()
    sync_stack.run()
    assert writes(sync_stack) == ({}, [])


# ---------------------------------------------------------------------------------------------------
# what a REJECTED_VALUE conflict is built from
# ---------------------------------------------------------------------------------------------------
def test_partner_central_validation_names_the_rejected_field(sync_stack: Any) -> None:
    """A ValidationException from Partner Central keeps the field paths it names (never the value)."""
    from cosell_hooks.partner_central import PartnerCentralHook
    from cosell_sync.errors import ValidationError

    ids = synced_book(sync_stack, opportunities=2)
    hook = PartnerCentralHook("partner_central_default", catalog="AWS")
    opp = sync_stack.pc.get_opportunity(Catalog="AWS", Identifier=ids[0])
    too_long = "x" * 300
    payload = {
        "Catalog": "AWS",
        "Identifier": opp["Id"],
        "LastModifiedDate": opp["LastModifiedDate"],
        "LifeCycle": {**{k: v for k, v in opp["LifeCycle"].items() if k == "Stage"}, "NextSteps": too_long},
        "Project": opp["Project"],
        "Customer": opp["Customer"],
    }
    with pytest.raises(ValidationError) as raised:
        hook.call("update_opportunity", **payload)
    assert raised.value.fields == ["LifeCycle.NextSteps"]
    assert raised.value.to_dict()["fields"] == "LifeCycle.NextSteps"
    assert too_long not in str(raised.value.to_dict())
