"""``cosell_events`` on the SQS path: a queued event becomes a synced record, once, and is acknowledged.

EventBridge's queue target puts the event, unchanged, in the message body. Here the event goes on moto's
SQS, the watcher's own trigger (``events_schedule``) receives it, and ``dag.test()`` runs ``cosell_events``
with the trigger's event as the run's triggering asset event. The one hop stood in for is Airflow's: the
triggerer storing the trigger event as an asset event (``Trigger.submit_event``: ``extra = {"from_trigger":
true, "payload": <event payload>}``) and the task context handing it back (``triggering_asset_events``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import requests
from scenarios import set_pc, synced_book

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]


def _emitted(stack: Any, oid: str) -> dict[str, Any]:
    r = requests.get(
        f"{stack.pc_url}/_emulator/events", params={"detail-type": "Opportunity Updated"}, timeout=30
    )
    r.raise_for_status()
    [event] = [e for e in r.json()["events"] if e["detail"]["opportunity"]["identifier"] == oid]
    return event


def _event_audit(stack: Any, event_id: str) -> list[str]:
    return sorted(
        e["action"] for e in stack.audit("events#AWS") if (e.get("metadata") or {}).get("eventId") == event_id
    )


def _received() -> list[dict[str, Any]]:
    """Run the watcher's trigger until it fires; the asset event extras Airflow would store for it."""
    from cosell_runtime.assets import events_schedule

    [asset] = events_schedule()
    trigger = asset.watchers[0].trigger

    async def first() -> Any:
        gen = trigger.run()
        try:
            return await asyncio.wait_for(gen.__anext__(), timeout=60)
        finally:
            await gen.aclose()

    return [{"from_trigger": True, "payload": asyncio.run(first()).payload}]


def _queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages."""
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_queued_events_are_synced_once_and_acknowledged(
    sync_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cosell_runtime.assets as assets
    from cosell_sync.config import load_config
    from cosell_sync.event_queue import QUEUE_URL_ENV
    from cosell_sync.events import EventLedger

    oid_a, oid_b, oid_c = synced_book(sync_stack, 3)
    requests.delete(f"{sync_stack.pc_url}/_emulator/events", timeout=30)
    sqs = sync_stack.aws("sqs")
    url = sqs.create_queue(QueueName="cosell-events", Attributes={"VisibilityTimeout": "900"})["QueueUrl"]
    monkeypatch.setenv(QUEUE_URL_ENV, url)

    def run_from_queue() -> None:
        extras = _received()
        monkeypatch.setattr(assets, "queue_asset_extras", lambda context: extras)
        sync_stack.run("cosell_events")
        monkeypatch.setattr(assets, "queue_asset_extras", lambda context: [])

    # 1. A console edit's event lands on the queue, next to a message that is not an event.
    set_pc(sync_stack, oid_a, {"next_steps": "Workshop booked via SQS"})
    event_a = _emitted(sync_stack, oid_a)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event_a))
    malformed = sqs.send_message(QueueUrl=url, MessageBody="not an EventBridge event")["MessageId"]
    run_from_queue()
    assert sync_stack.deal_by_opportunity(oid_a)["properties"]["aws_next_steps"] == "Workshop booked via SQS"
    assert _event_audit(sync_stack, event_a["id"]) == ["EVENT_PROCESSED"]
    ignored = [
        e for e in sync_stack.audit("events#AWS") if malformed in (e.get("metadata") or {}).get("reason", "")
    ]
    assert [e["action"] for e in ignored] == ["EVENT_IGNORED"]
    # Both settled (synced; ignored for good): acknowledged, the queue is empty.
    assert _queue_counts(sqs, url) == (0, 0)

    # 2. The same event through the REST path (the API destination also delivers it), in a batch with a new
    # event: the first is a duplicate (nothing read or written for it), the second is synced.
    set_pc(sync_stack, oid_b, {"next_steps": "Partner call Tuesday"})
    event_b = _emitted(sync_stack, oid_b)
    sync_stack.reset_calls()
    sync_stack.run("cosell_events", conf={"events": [event_a, event_b]})
    assert sync_stack.calls()[0]["by_operation"].get("GetOpportunity") == 1  # event_b's record only
    assert _event_audit(sync_stack, event_a["id"]) == ["EVENT_DUPLICATE", "EVENT_PROCESSED"]
    assert _event_audit(sync_stack, event_b["id"]) == ["EVENT_PROCESSED"]

    # 3. Then through the queue: event_b again (done by the REST run: a duplicate, deleted) and an event
    # another run holds and has not finished, as a run that died holding it would: not acknowledged, the
    # message stays in flight and SQS delivers it again after the visibility timeout.
    set_pc(sync_stack, oid_c, {"next_steps": "Held by another run"})
    event_c = _emitted(sync_stack, oid_c)
    cfg = load_config()
    EventLedger(sync_stack.aws("dynamodb"), cfg.storage.state_table, claim_seconds=900).claim(
        [event_c["id"]], "eb-another-run"
    )
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event_b))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event_c))
    sync_stack.reset_calls()
    run_from_queue()
    assert "GetOpportunity" not in sync_stack.calls()[0]["by_operation"]
    assert _event_audit(sync_stack, event_b["id"]) == ["EVENT_DUPLICATE", "EVENT_PROCESSED"]
    assert _event_audit(sync_stack, event_c["id"]) == ["EVENT_DUPLICATE"]
    assert _queue_counts(sqs, url) == (0, 1)
