"""The SQS path's pure parts: the queue watched, the messages of asset events, acknowledgement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from cosell_sync.config import EventsConfig
from cosell_sync.event_queue import (
    QUEUE_URL_ENV,
    QueueSettings,
    acknowledge,
    messages_from_asset_extras,
    messages_to_acknowledge,
    queue_settings,
)

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/cosell-events-EventsQueue-abc"


def _config(tmp_path: Path, events: dict[str, Any] | None) -> Path:
    path = tmp_path / "sync_config.yaml"
    path.write_text(json.dumps({"catalog": "AWS", **({"events": events} if events is not None else {})}))
    return path


def _message(n: int, handle: str | None = None, body: str = "{}") -> dict[str, Any]:
    return {"MessageId": f"m-{n}", "ReceiptHandle": handle or f"h-{n}", "Body": body, "MD5OfBody": "x"}


def _extra(*messages: dict[str, Any]) -> dict[str, Any]:
    """An asset event's extra as Airflow stores a trigger event (``Trigger.submit_event``)."""
    return {"from_trigger": True, "payload": {"status": "success", "message_batch": list(messages)}}


class TestQueueSettings:
    """``queue_settings``: what ``events_schedule`` reads at parse time."""

    def test_no_queue_named_is_rest_only(self, tmp_path: Path) -> None:
        assert queue_settings(_config(tmp_path, None), environ={}) is None
        assert queue_settings(_config(tmp_path, {"sqs_queue_url": ""}), environ={}) is None
        assert queue_settings(tmp_path / "missing.yaml", environ={}) is None

    def test_packaged_config_names_no_queue(self) -> None:
        assert queue_settings(environ={}) is None

    def test_config_names_the_queue(self, tmp_path: Path) -> None:
        path = _config(tmp_path, {"sqs_queue_url": QUEUE, "sqs_conn_id": "aws_events", "sqs_wait_seconds": 5})
        assert queue_settings(path, environ={}) == QueueSettings(QUEUE, "aws_events", 900, 5)

    def test_environment_overrides_the_config(self, tmp_path: Path) -> None:
        other = QUEUE.replace("abc", "xyz")
        path = _config(tmp_path, {"sqs_queue_url": QUEUE})
        assert queue_settings(path, environ={QUEUE_URL_ENV: other}).queue_url == other
        assert queue_settings(_config(tmp_path, None), environ={QUEUE_URL_ENV: other}).queue_url == other

    @pytest.mark.parametrize(
        ("events", "key"),
        [
            pytest.param({"sqs_queue_url": "cosell-events"}, "events.sqs_queue_url", id="not-a-url"),
            pytest.param({"sqs_queue_url": QUEUE, "sqs_wait_seconds": 30}, "sqs_wait_seconds", id="wait"),
            pytest.param(
                {"sqs_queue_url": QUEUE, "sqs_visibility_timeout_seconds": 5},
                "sqs_visibility_timeout_seconds",
                id="visibility",
            ),
        ],
    )
    def test_bad_values_name_the_key(self, tmp_path: Path, events: dict[str, Any], key: str) -> None:
        with pytest.raises(ValueError, match=key):
            queue_settings(_config(tmp_path, events), environ={})

    def test_the_full_config_checks_the_same_keys(self) -> None:
        assert EventsConfig().sqs_queue_url == ""
        assert EventsConfig(sqs_queue_url=f" {QUEUE} ").sqs_queue_url == QUEUE
        with pytest.raises(ValueError, match="SQS queue URL"):
            EventsConfig(sqs_queue_url="cosell-events")
        with pytest.raises(ValueError, match="sqs_wait_seconds"):
            EventsConfig(sqs_wait_seconds=0)


class TestMessagesFromAssetExtras:
    """The messages a run received, from its triggering asset events' extras."""

    def test_messages_in_order_across_asset_events(self) -> None:
        got = messages_from_asset_extras([_extra(_message(1), _message(2)), _extra(_message(3))])
        assert [(m.message_id, m.receipt_handle) for m in got] == [
            ("m-1", "h-1"),
            ("m-2", "h-2"),
            ("m-3", "h-3"),
        ]

    def test_a_message_received_twice_keeps_its_latest_handle(self) -> None:
        got = messages_from_asset_extras([_extra(_message(1)), _extra(_message(1, handle="h-1-again"))])
        assert [(m.message_id, m.receipt_handle) for m in got] == [("m-1", "h-1-again")]

    def test_anything_else_is_skipped_not_an_error(self) -> None:
        extras = [
            {},  # an asset event posted by hand
            None,
            {"from_trigger": True, "payload": {"status": "success"}},
            _extra({"Body": "{}"}, "text", _message(4)),  # no id/handle, not an object, a good one
        ]
        assert [m.message_id for m in messages_from_asset_extras(extras)] == ["m-4"]

    def test_the_run_keeps_references_never_the_body(self) -> None:
        [message] = messages_from_asset_extras([_extra(_message(1, body='{"secret": "value"}'))])
        assert message.to_ref("ev-1") == {"message_id": "m-1", "receipt_handle": "h-1", "event_id": "ev-1"}


@pytest.mark.parametrize(
    ("event_id", "deleted"),
    [
        pytest.param("ev-synced", True, id="synced-by-this-run"),
        pytest.param("ev-done", True, id="duplicate-done-elsewhere"),
        pytest.param("ev-held", False, id="duplicate-another-run-is-working-on"),
        pytest.param(None, True, id="malformed-no-id"),
        pytest.param("ev-unknown-type", True, id="ignored"),
    ],
)
def test_messages_to_acknowledge(event_id: str | None, deleted: bool) -> None:
    ref = {"message_id": "m-1", "receipt_handle": "h-1", "event_id": event_id}
    got = messages_to_acknowledge([ref], settled_ids=["ev-synced", "ev-done"], unsettled_ids=["ev-held"])
    assert (got == [ref]) is deleted


class TestAcknowledge:
    """``acknowledge`` against SQS (moto): deletes what it is given, never raises for a refused handle."""

    @pytest.fixture
    def sqs(self, aws_endpoint: str) -> Any:
        return boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1")

    def test_deletes_settled_messages_in_batches(self, sqs: Any) -> None:
        url = sqs.create_queue(QueueName="events", Attributes={"VisibilityTimeout": "900"})["QueueUrl"]
        for n in range(12):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": f"ev-{n}"}))
        received: list[dict[str, Any]] = []
        while len(received) < 12:
            received += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        refs = [{"message_id": m["MessageId"], "receipt_handle": m["ReceiptHandle"]} for m in received]

        got = acknowledge(sqs, url, refs)

        assert sorted(got["deleted"]) == sorted(r["message_id"] for r in refs)
        assert got["failed"] == []
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == "0"
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

    def test_a_refused_handle_is_reported_not_raised(self, sqs: Any) -> None:
        url = sqs.create_queue(QueueName="events")["QueueUrl"]
        got = acknowledge(sqs, url, [{"message_id": "m-1", "receipt_handle": "not-a-handle"}])
        assert got == {"deleted": [], "failed": ["m-1"]}
