"""The SQS path of ``cosell_events``: EventBridge queues Partner Central events, Airflow watches the queue.

For deployments that cannot expose Airflow's API server to EventBridge. The CloudFormation template's rule
sends every event, unchanged, to the events queue (``EnableQueueTarget=true``); an ``AssetWatcher`` whose
trigger polls that queue (``cosell_runtime.assets``) emits an asset event per batch of messages, and
``cosell_events``, scheduled on that asset, syncs the events the messages carry. This module holds the parts
that need no Airflow:

- :func:`queue_settings` reads the queue to watch from the sync config (``events.sqs_queue_url``) or the
  environment (:data:`QUEUE_URL_ENV`), cheaply: DAG files call it at parse time (one YAML read, no pydantic).
- :func:`messages_from_asset_extras` takes the SQS messages out of the asset events' ``extra`` (Airflow
  stores a trigger's event there as ``{"from_trigger": true, "payload": {"message_batch": [...]}}``).
- :func:`messages_to_acknowledge` and :func:`acknowledge`: acknowledge after processing.

**Acknowledgement.** The amazon provider's ``SqsSensorTrigger`` deletes what it receives by default
(``delete_message_on_reception=True``), before any run exists: a crash between the trigger and the sync
loses the event. The watcher therefore receives with ``delete_message_on_reception=False`` and a
visibility timeout, and the run's ``finish`` deletes a message only once its event is settled: synced by
this run (marked ``done`` in the event ledger), ignored (malformed or not ours: a redelivery would be
ignored again), or a duplicate the ledger shows ``done``. A message whose event another run is still
working on, or whose run failed, is not deleted: SQS hands it out again after the visibility timeout and
the next run takes the event up (the ledger lets it once the failed run's claim expired), up to the queue's
``maxReceiveCount``, after which SQS moves it to the dead-letter queue.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

#: Environment variable naming the queue to watch; it overrides ``events.sqs_queue_url``.
QUEUE_URL_ENV = "COSELL_EVENTS_SQS_QUEUE_URL"
DEFAULT_CONFIG_PATH = Path(__file__).with_name("sync_config.yaml")

#: Defaults of the ``events`` config keys (``cosell_sync.config.EventsConfig`` uses the same).
DEFAULT_CONN_ID = "aws_default"
#: The CloudFormation queue's own visibility timeout: longer than an event run takes, lease waits included.
DEFAULT_VISIBILITY_TIMEOUT = 900
#: SQS long polling (at most 20 s): a message is received as soon as it lands, at 3 calls a minute idle.
DEFAULT_WAIT_SECONDS = 20
#: ``DeleteMessageBatch`` takes at most 10 entries.
_DELETE_BATCH = 10


@dataclass(frozen=True)
class QueueSettings:
    """Which queue the watcher polls, and how.

    Attributes:
        queue_url: the SQS queue URL (the stack's ``EventsQueueUrl`` output).
        conn_id: the Airflow AWS connection that reads and deletes its messages.
        visibility_timeout_seconds: how long a received message stays hidden from the next receive; a
            message not deleted by then (the run failed or is still waiting) is delivered again.
        wait_seconds: long-poll time of each receive (1-20).
    """

    queue_url: str
    conn_id: str = DEFAULT_CONN_ID
    visibility_timeout_seconds: int = DEFAULT_VISIBILITY_TIMEOUT
    wait_seconds: int = DEFAULT_WAIT_SECONDS


def _config_path() -> Path:
    return Path(os.environ.get("COSELL_SYNC_CONFIG", DEFAULT_CONFIG_PATH))


def queue_settings(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> QueueSettings | None:
    """The queue ``cosell_events`` is scheduled on, or None when no queue is named (REST-triggered only).

    ``COSELL_EVENTS_SQS_QUEUE_URL`` wins over ``events.sqs_queue_url``; the other ``events.sqs_*`` keys
    come from the config either way. Cheap (one YAML read, no network): DAG files call it at parse time.
    The full config is validated at task time (``cosell_sync.config.EventsConfig``).

    Raises:
        ValueError: a set key has the wrong type or range (the message names the key and the file).
    """
    environ = os.environ if environ is None else environ
    file = path or _config_path()
    try:
        with open(file, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        data = {}
    events = data.get("events") or {}
    url = (environ.get(QUEUE_URL_ENV) or events.get("sqs_queue_url") or "").strip()
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        # Names the source, never echoes the value (a URL may carry an account id).
        source = QUEUE_URL_ENV if environ.get(QUEUE_URL_ENV) else f"{file}: events.sqs_queue_url"
        raise ValueError(
            f"{source}: must be an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)"
        )
    conn_id = events.get("sqs_conn_id") or DEFAULT_CONN_ID
    visibility = events.get("sqs_visibility_timeout_seconds", DEFAULT_VISIBILITY_TIMEOUT)
    wait = events.get("sqs_wait_seconds", DEFAULT_WAIT_SECONDS)
    if not isinstance(conn_id, str):
        raise ValueError(f"{file}: events.sqs_conn_id: must be a connection id")
    if not isinstance(visibility, int) or not 30 <= visibility <= 43_200:
        raise ValueError(
            f"{file}: events.sqs_visibility_timeout_seconds: must be an integer from 30 to 43200"
        )
    if not isinstance(wait, int) or not 1 <= wait <= 20:
        raise ValueError(f"{file}: events.sqs_wait_seconds: must be an integer from 1 to 20")
    return QueueSettings(url, conn_id, visibility, wait)


@dataclass(frozen=True)
class QueuedMessage:
    """One SQS message a run received through its triggering asset events.

    Attributes:
        message_id: SQS ``MessageId``.
        receipt_handle: the handle of the latest receive, needed to delete it.
        body: the message body (EventBridge puts the event's JSON there).
    """

    message_id: str
    receipt_handle: str
    body: str

    def to_ref(self, event_id: str | None) -> dict[str, Any]:
        """What the run keeps (XCom): the references to acknowledge it, never the body."""
        return {"message_id": self.message_id, "receipt_handle": self.receipt_handle, "event_id": event_id}


def messages_from_asset_extras(extras: Iterable[Any]) -> list[QueuedMessage]:
    """The SQS messages in a run's triggering asset events, in order, one per ``MessageId``.

    Each ``extra`` is what Airflow stored for a trigger event (``{"from_trigger": true, "payload":
    {"status": "success", "message_batch": [<receive_message's Messages>...]}}``). Anything else (an asset
    event posted by hand, a message without id or handle) is skipped with a warning: it cannot be
    acknowledged, and the scheduled reconcile covers what it may have meant. A message received twice (its
    visibility timeout passed while the first run waited) keeps its latest receipt handle, the only one SQS
    reliably deletes with.
    """
    out: dict[str, QueuedMessage] = {}
    for extra in extras:
        payload = extra.get("payload") if isinstance(extra, Mapping) else None
        batch = payload.get("message_batch") if isinstance(payload, Mapping) else None
        if not isinstance(batch, list):
            log.warning("asset event without an SQS message batch skipped (keys: %s)", _keys(extra))
            continue
        for message in batch:
            if not isinstance(message, Mapping):
                log.warning("SQS message that is not an object skipped")
                continue
            message_id, handle = message.get("MessageId"), message.get("ReceiptHandle")
            if not isinstance(message_id, str) or not isinstance(handle, str):
                log.warning("SQS message without MessageId or ReceiptHandle skipped")
                continue
            body = message.get("Body")
            out.pop(message_id, None)
            out[message_id] = QueuedMessage(message_id, handle, body if isinstance(body, str) else "")
    return list(out.values())


def _keys(value: Any) -> list[str]:
    return sorted(str(k) for k in value) if isinstance(value, Mapping) else [type(value).__name__]


def messages_to_acknowledge(
    messages: Iterable[Mapping[str, Any]],
    settled_ids: Iterable[str],
    unsettled_ids: Iterable[str],
) -> list[Mapping[str, Any]]:
    """The messages a finished run may delete (see the module docstring).

    Args:
        messages: the run's message references (:meth:`QueuedMessage.to_ref`).
        settled_ids: event ids synced by this run or found ``done`` in the ledger.
        unsettled_ids: event ids another run holds and has not finished: their messages stay on the queue.

    Returns:
        The references to delete: settled events, and messages whose event the run ignored (no id, or an
        id in neither list, i.e. malformed, unknown or another catalog's).
    """
    settled, unsettled = set(settled_ids), set(unsettled_ids)
    return [m for m in messages if m.get("event_id") in settled or m.get("event_id") not in unsettled]


def acknowledge(
    sqs_client: Any, queue_url: str, messages: Iterable[Mapping[str, Any]]
) -> dict[str, list[str]]:
    """Delete settled messages from the queue; never raises for a message SQS refuses.

    A delete that fails (an expired receipt handle: the message was received again meanwhile) leaves the
    message on the queue; its next delivery finds the event ``done`` and is deleted then.

    Returns:
        ``{"deleted": [message ids], "failed": [message ids]}``.
    """
    refs = list(messages)
    deleted: list[str] = []
    failed: list[str] = []
    for start in range(0, len(refs), _DELETE_BATCH):
        chunk = refs[start : start + _DELETE_BATCH]
        # Entry ids only need to be unique within the call: the positions map answers back to messages.
        entries = [{"Id": str(n), "ReceiptHandle": m["receipt_handle"]} for n, m in enumerate(chunk)]
        response = sqs_client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        for ok in response.get("Successful", []):
            deleted.append(chunk[int(ok["Id"])]["message_id"])
        for bad in response.get("Failed", []):
            message_id = chunk[int(bad["Id"])]["message_id"]
            failed.append(message_id)
            log.warning("SQS message %s not deleted (%s); it is delivered again", message_id, bad.get("Code"))
    return {"deleted": deleted, "failed": failed}


def settings_dict(settings: QueueSettings) -> dict[str, Any]:
    """The settings as a JSON-safe dict (the run description)."""
    return asdict(settings)
