"""Event-driven scheduling of ``cosell_events`` on the SQS events queue (``cosell_sync.event_queue``).

``cosell_events`` calls :func:`events_schedule` at parse time: with no queue configured it is ``None``
(runs are started through the REST API only); with one, the DAG is scheduled on the asset
:data:`EVENTS_ASSET_NAME`, whose ``AssetWatcher`` runs the amazon provider's SQS trigger in the triggerer
(:class:`~cosell_runtime.sqs_trigger.ThreadedSqsTrigger`: ``SqsSensorTrigger`` on boto3, because the
aiobotocore it needs cannot be installed next to the pinned botocore). Each batch of messages it receives
becomes one asset event; the asset-triggered run reads them back with :func:`queued_events`, and its
``finish`` deletes them once their events are settled (:func:`acknowledge_queued`). A DAG scheduled on an
asset can still be triggered through the REST API, so the API destination path keeps working next to it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Asset

log = logging.getLogger(__name__)

#: The asset the events queue's watcher updates (its name; the URI defaults to it).
EVENTS_ASSET_NAME = "cosell_partner_central_events_queue"
#: At most this many messages per receive (SQS's maximum): one asset event carries up to 10 events.
MAX_MESSAGES = 10
#: Seconds the trigger sleeps after an empty receive; the long poll (``sqs_wait_seconds``) already waits.
POLL_PAUSE_SECONDS = 1


def events_schedule(path: Path | None = None) -> list[Asset] | None:
    """``cosell_events``' schedule: None, or the events queue's asset with its watcher.

    Cheap, as parse time needs: one YAML read and the trigger's constructor; no network, no connection
    lookup (the triggerer resolves the connection when it runs the trigger). With a queue, the amazon
    provider's SQS trigger module is imported (about 0.3 s in a fresh interpreter).

    Args:
        path: the sync config (default: ``COSELL_SYNC_CONFIG`` or the packaged ``sync_config.yaml``).

    Raises:
        ValueError: a set ``events.sqs_*`` key is invalid (the DAG's import error names it).
    """
    from cosell_sync.event_queue import queue_settings

    settings = queue_settings(path)
    if settings is None:
        return None
    # Imported only when a queue is named: the amazon provider's trigger module is not needed otherwise.
    from airflow.sdk import Asset, AssetWatcher

    from cosell_runtime.sqs_trigger import ThreadedSqsTrigger

    trigger = ThreadedSqsTrigger(
        sqs_queue=settings.queue_url,
        aws_conn_id=settings.conn_id,
        max_messages=MAX_MESSAGES,
        wait_time_seconds=settings.wait_seconds,
        waiter_delay=POLL_PAUSE_SECONDS,
        # Acknowledge after processing: the run's finish deletes a message once its event is settled
        # (cosell_sync.event_queue). Deleting on reception (the provider's default) would lose the event
        # if the run then failed.
        delete_message_on_reception=False,
        visibility_timeout=settings.visibility_timeout_seconds,
    )
    watcher = AssetWatcher(name="cosell_events_sqs", trigger=trigger)
    return [Asset(name=EVENTS_ASSET_NAME, watchers=[watcher])]


def queue_asset_extras(context: Mapping[str, Any]) -> list[Any]:
    """The ``extra`` of each triggering asset event of the events queue's asset (empty for REST runs)."""
    events = context.get("triggering_asset_events") or {}
    out: list[Any] = []
    for asset, refs in events.items():
        if getattr(asset, "name", None) != EVENTS_ASSET_NAME:
            continue
        out.extend(getattr(ref, "extra", None) for ref in refs)
    return out


def queued_events(context: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[Any]]:
    """The EventBridge events an asset-triggered ``cosell_events`` run received from the events queue.

    Returns:
        ``(queue, events)``: ``queue`` is None for a run without queue messages, else what ``finish``
        needs to acknowledge them (``queue_url``, ``conn_id``, ``messages``: ids and receipt handles, never
        bodies); ``events`` are the bodies parsed (``cosell_sync.events.parse_event``): a body that is not
        an EventBridge event is an ignored event (audited ``EVENT_IGNORED``), never an error.
    """
    from dataclasses import replace

    from cosell_sync.event_queue import messages_from_asset_extras, queue_settings
    from cosell_sync.events import parse_event

    messages = messages_from_asset_extras(queue_asset_extras(context))
    if not messages:
        return None, []
    events = []
    refs = []
    for message in messages:
        event = parse_event(message.body)
        if event.event_id is None:
            # The audit entry then says which message it was (a MessageId is no PII).
            event = replace(event, reason=f"{event.reason} (SQS message {message.message_id})")
        events.append(event)
        refs.append(message.to_ref(event.event_id))
    settings = queue_settings()
    if settings is None:
        # The queue was unconfigured after the messages were received: they cannot be deleted here, and
        # come back after the visibility timeout only if a watcher still polls the queue.
        log.warning(
            "%d SQS message(s) received but no queue is configured: they are not acknowledged", len(refs)
        )
        return None, events
    return {"queue_url": settings.queue_url, "conn_id": settings.conn_id, "messages": refs}, events


def acknowledge_queued(run: Mapping[str, Any], ledger: Any) -> dict[str, list[str]]:
    """``finish``: delete the run's queue messages whose events are settled (``cosell_sync.event_queue``).

    Called after the run marked its claimed events ``done``. A duplicate is settled when the ledger shows
    it ``done``; one another run still holds stays on the queue and comes back after the visibility
    timeout. A delete SQS refuses, or AWS being unreachable, is logged and leaves the message to be
    delivered again (its event is then a ``done`` duplicate and is deleted by that run): the events are
    synced already, so the run does not fail for it.

    Args:
        run: the run description (``run["events"]["sqs"]`` from :func:`queued_events`).
        ledger: the ``cosell_sync.events.EventLedger``.

    Returns:
        ``{"deleted": [message ids], "failed": [...], "kept": [...]}``; empty without queue messages.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from cosell_hooks.aws import aws_client
    from cosell_sync.event_queue import acknowledge, messages_to_acknowledge

    events = run.get("events") or {}
    queue = events.get("sqs")
    if not queue or not queue.get("messages"):
        return {}
    duplicates = list(events.get("duplicates") or [])
    done = [d for d in duplicates if (ledger.status(d) or {}).get("status") == "done"]
    unsettled = [d for d in duplicates if d not in set(done)]
    settled = [*events.get("claimed", []), *done]
    delete = messages_to_acknowledge(queue["messages"], settled, unsettled)
    kept = [m["message_id"] for m in queue["messages"] if m not in delete]
    try:
        client = aws_client("sqs", queue["conn_id"])
        result = acknowledge(client, queue["queue_url"], delete)
    except (BotoCoreError, ClientError) as err:
        log.warning("SQS messages not acknowledged (%s); they are delivered again", type(err).__name__)
        result = {"deleted": [], "failed": [m["message_id"] for m in delete]}
    log.info(
        "SQS: %d message(s) deleted, %d kept for another delivery (event held by another run), %d failed",
        len(result["deleted"]),
        len(kept),
        len(result["failed"]),
    )
    return {**result, "kept": kept}
