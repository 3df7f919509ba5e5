"""``cosell_runtime.assets``: cosell_events' asset schedule on the SQS events queue, and reading its messages.

The watcher's trigger is run for real (asyncio; the amazon provider's ``SqsSensorTrigger`` logic on boto3)
against moto's SQS: what it yields is what Airflow stores as the asset event's ``extra``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from cosell_runtime.assets import EVENTS_ASSET_NAME, events_schedule, queue_asset_extras, queued_events
from cosell_sync.event_queue import QUEUE_URL_ENV

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/cosell-events-EventsQueue-abc"
EVENT = {
    "version": "1",
    "id": "0d7f8a1e-1111-2222-3333-444455556666",
    "detail-type": "Opportunity Updated",
    "source": "aws.partnercentral-selling",
    "account": "111122223333",
    "time": "2026-12-06T09:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {"catalog": "AWS", "opportunity": {"identifier": "O1234567"}},
}


@pytest.fixture
def no_queue_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(QUEUE_URL_ENV, raising=False)


def _config(tmp_path: Path, events: dict[str, Any] | None) -> Path:
    path = tmp_path / "sync_config.yaml"
    path.write_text(json.dumps({"events": events} if events is not None else {}))
    return path


class TestEventsSchedule:
    """What ``cosell_events`` is scheduled on."""

    def test_no_queue_means_no_schedule(self, tmp_path: Path, no_queue_env: None) -> None:
        assert events_schedule(_config(tmp_path, None)) is None
        assert events_schedule(_config(tmp_path, {"sqs_queue_url": ""})) is None

    def test_a_configured_queue_gives_the_watched_asset(self, tmp_path: Path, no_queue_env: None) -> None:
        from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger
        from airflow.triggers.base import BaseEventTrigger

        [asset] = events_schedule(_config(tmp_path, {"sqs_queue_url": QUEUE, "sqs_conn_id": "aws_events"}))

        assert asset.name == EVENTS_ASSET_NAME
        [watcher] = asset.watchers
        # An event trigger (what AssetWatcher runs), and the provider's SQS trigger underneath.
        assert isinstance(watcher.trigger, BaseEventTrigger)
        assert isinstance(watcher.trigger, SqsSensorTrigger)
        # What the triggerer stores and runs: acknowledging after processing, long polling.
        classpath, kwargs = watcher.trigger.serialize()
        assert classpath == "cosell_runtime.sqs_trigger.ThreadedSqsTrigger"
        assert kwargs["sqs_queue"] == QUEUE
        assert kwargs["aws_conn_id"] == "aws_events"
        assert kwargs["delete_message_on_reception"] is False
        assert kwargs["visibility_timeout"] == 900
        assert kwargs["wait_time_seconds"] == 20

    def test_the_environment_names_the_queue(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(QUEUE_URL_ENV, QUEUE)
        [asset] = events_schedule(_config(tmp_path, None))
        assert asset.watchers[0].trigger.serialize()[1]["sqs_queue"] == QUEUE

    def test_a_bad_key_fails_the_import_with_its_name(self, tmp_path: Path, no_queue_env: None) -> None:
        with pytest.raises(ValueError, match=r"events\.sqs_wait_seconds"):
            events_schedule(_config(tmp_path, {"sqs_queue_url": QUEUE, "sqs_wait_seconds": 60}))


def _context(*extras: Any, asset_name: str = EVENTS_ASSET_NAME) -> dict[str, Any]:
    """A task context's ``triggering_asset_events``: asset -> its events (each with ``extra``)."""
    from airflow.sdk import Asset

    return {"triggering_asset_events": {Asset(name=asset_name): [SimpleNamespace(extra=e) for e in extras]}}


def _extra(*bodies: str) -> dict[str, Any]:
    batch = [{"MessageId": f"m-{n}", "ReceiptHandle": f"h-{n}", "Body": b} for n, b in enumerate(bodies)]
    return {"from_trigger": True, "payload": {"status": "success", "message_batch": batch}}


class TestQueuedEvents:
    """The EventBridge events an asset-triggered run received."""

    def test_a_rest_run_has_none(self) -> None:
        assert queued_events({}) == (None, [])
        assert queued_events({"triggering_asset_events": {}}) == (None, [])
        # Events of another asset are not ours to read.
        assert queue_asset_extras(_context(_extra(json.dumps(EVENT)), asset_name="other")) == []

    def test_bodies_become_events_and_malformed_ones_are_ignored(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(QUEUE_URL_ENV, QUEUE)
        context = _context(_extra(json.dumps(EVENT), "not json", json.dumps({"id": "x", "detail-type": "?"})))

        queue, events = queued_events(context)

        assert [e.event_id for e in events] == [EVENT["id"], None, "x"]
        assert events[0].opportunity_ids == ("O1234567",)
        assert not events[0].ignored
        # Never an error: ignored, with a reason naming the message (audited EVENT_IGNORED by finish).
        assert events[1].ignored
        assert events[1].reason == "malformed: not JSON (SQS message m-1)"
        assert events[2].ignored
        assert events[2].reason.startswith("malformed envelope")
        assert queue == {
            "queue_url": QUEUE,
            "conn_id": "aws_default",
            "messages": [
                {"message_id": "m-0", "receipt_handle": "h-0", "event_id": EVENT["id"]},
                {"message_id": "m-1", "receipt_handle": "h-1", "event_id": None},
                {"message_id": "m-2", "receipt_handle": "h-2", "event_id": "x"},
            ],
        }


def test_the_watchers_trigger_receives_without_deleting(
    aws_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trigger ``events_schedule`` builds, run against moto: its event carries the message, which stays
    on the queue (in flight) until a run acknowledges it."""
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName="cosell-events")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(EVENT))
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1", "endpoint_url": aws_endpoint}}),
    )
    monkeypatch.setenv(QUEUE_URL_ENV, url)
    [asset] = events_schedule(_config(tmp_path, {"sqs_wait_seconds": 1}))
    trigger = asset.watchers[0].trigger

    async def first_event() -> Any:
        gen = trigger.run()
        try:
            return await asyncio.wait_for(gen.__anext__(), timeout=60)
        finally:
            await gen.aclose()

    fired = asyncio.run(first_event())

    # Airflow stores this payload as the asset event's extra (Trigger.submit_event).
    extra = {"from_trigger": True, "payload": fired.payload}
    queue, events = queued_events(_context(extra))
    assert [e.event_id for e in events] == [EVENT["id"]]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1", "received, hidden, not deleted"
    assert queue is not None
    assert queue["messages"][0]["receipt_handle"]
