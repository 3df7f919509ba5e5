"""HubSpot's webhook batches, received on Airflow's API server: verified, deduplicated, stored, then synced.

``POST /cosell/hubspot/webhooks`` (this router is part of the Co-sell app the plugin mounts under
``/cosell``; the full URL is ``<api-server base URL>/cosell/hubspot/webhooks``). It does not use Airflow's
JWT: HubSpot cannot send one. It authenticates the request by its ``X-HubSpot-Signature-v3`` instead.

For each request, in this order (see ``cosell_sync.webhooks`` for the rules and their sources):

1. **Verify**: the v3 signature over the method, the URI HubSpot called (``webhooks.target_url`` of the
   sync config when set, for proxies; else the URL received), the raw body and the timestamp, with the
   HubSpot app's client secret (``hubspot_default`` connection, extra ``client_secret``); a missing or bad
   signature, or a timestamp older than 5 minutes, is a 401 and nothing else happens.
2. **Deduplicate**: each event's key (``hs-<portalId>-<eventId>-<subscriptionId>``) is reserved in the state
   table (``EventLedger.reserve``, a conditional put on ``EVENT#<key>``) for the batch's run. Events
   another run holds or processed are duplicates; a batch of duplicates only is answered 200 and dropped.
3. **Store** the raw body in the state bucket (``<prefix>/webhooks/hubspot/YYYY/MM/DD/<batch id>.json``)
   before answering: a batch is never lost, even while the scheduler is down. Storage failing is a 503,
   and HubSpot delivers the batch again.
4. **Trigger** ``cosell_events`` with conf ``{"hubspot": {"batch_key", "batch_id", "reserved_for",
   "object_ids"}}``
   (references, not the events), run id ``hs-<batch id>``. A retried delivery names the same events, hence
   the same batch id and run id: it finds the run there and starts none. Then 200.

Logs and errors name rules and ids, never the body, a property value or the secret.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

EVENTS_DAG = "cosell_events"
#: The route, relative to the Co-sell app's mount (``/cosell``).
PATH = "/hubspot/webhooks"

router = APIRouter()


def _client_secret() -> str:
    from cosell_hooks.hubspot import HubSpotHook
    from cosell_runtime.env import HUBSPOT_CONN_ID

    return HubSpotHook(HUBSPOT_CONN_ID).webhook_client_secret()


def _stores() -> tuple[Any, Any]:
    """The state bucket's store and the event ledger, from the ``aws_default`` connection."""
    from cosell_hooks.aws import aws_client
    from cosell_runtime.env import AWS_CONN_ID
    from cosell_sync.config import load_config
    from cosell_sync.events import EventLedger
    from cosell_sync.storage import SnapshotStore

    cfg = load_config()
    s3 = aws_client("s3", AWS_CONN_ID)
    dynamodb = aws_client("dynamodb", AWS_CONN_ID)
    ledger = EventLedger(dynamodb, cfg.storage.state_table, claim_seconds=cfg.lease.ttl_seconds)
    return SnapshotStore(s3, cfg.storage.bucket, cfg.storage.prefix), ledger


def _trigger(run_id: str, conf: dict[str, Any]) -> bool:
    """Create the queued ``cosell_events`` run as Airflow's REST trigger does; False if it exists already."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagRunAlreadyExists
    from airflow.utils.types import DagRunTriggeredByType

    try:
        trigger_dag(
            EVENTS_DAG,
            run_id=run_id,
            conf=conf,
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name="hubspot-webhook",
        )
    except DagRunAlreadyExists:
        return False
    return True


def _unavailable(what: str, err: Exception) -> HTTPException:
    # HubSpot retries a 5xx delivery (up to 10 times over 24 hours): the batch is not lost.
    log.warning("hubspot webhook: %s failed (%s); answering 503 so HubSpot retries", what, type(err).__name__)
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{what} failed; deliver again later")


@router.post(PATH, include_in_schema=True, summary="HubSpot webhook batches (signed, not JWT)")
async def receive_hubspot_webhooks(request: Request) -> JSONResponse:
    """Verify, deduplicate and store a HubSpot webhook batch, then start ``cosell_events`` for it."""
    from starlette.concurrency import run_in_threadpool

    body = await request.body()  # the raw bytes: the signature is over them, not over re-encoded JSON
    # Everything below blocks (connections, DynamoDB, S3, the metadata DB): off the event loop.
    return await run_in_threadpool(_handle, request.method, str(request.url), dict(request.headers), body)


def _handle(method: str, url: str, headers: dict[str, str], body: bytes) -> JSONResponse:
    from cosell_sync.config import load_config
    from cosell_sync.webhooks import (
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        MalformedBatchError,
        SignatureError,
        batch_key,
        parse_batch,
        run_id,
        verify_v3,
    )

    lower = {k.lower(): v for k, v in headers.items()}
    try:
        cfg = load_config().webhooks
        secret = _client_secret()
    except Exception as err:  # a missing connection or secret: HubSpot retries while it is fixed
        raise _unavailable("reading the webhook configuration", err) from err
    try:
        verify_v3(
            secret,
            method,
            cfg.target_url or url,
            body,
            lower.get(TIMESTAMP_HEADER.lower()),
            lower.get(SIGNATURE_HEADER.lower()),
            now_ms=int(time.time() * 1000),
            max_age_seconds=cfg.max_age_seconds,
        )
    except SignatureError as err:
        log.warning("hubspot webhook refused: %s", err.reason)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"invalid HubSpot signature: {err.reason}"
        ) from None
    try:
        batch = parse_batch(body)
    except MalformedBatchError as err:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(err)) from None
    run = run_id(batch.batch_id)
    try:
        store, ledger = _stores()
        reserved, duplicates = ledger.reserve(batch.keys, run)
    except Exception as err:
        raise _unavailable("reserving the event ids", err) from err
    answer: dict[str, Any] = {
        "batchId": batch.batch_id,
        "events": len(batch.events),
        "duplicates": len(duplicates),
    }
    if batch.keys and not reserved:
        log.info(
            "hubspot webhook: batch %s: all %d event(s) already taken; nothing to do", run, len(duplicates)
        )
        return JSONResponse({**answer, "runId": None, "stored": None})
    key = batch_key(batch.batch_id, datetime.now(UTC))
    try:
        store.s3.put_object(
            Bucket=store.bucket, Key=store.full_key(key), Body=body, ContentType="application/json"
        )
    except Exception as err:
        raise _unavailable("storing the batch", err) from err
    conf = {
        "hubspot": {
            "batch_key": key,
            "batch_id": batch.batch_id,
            "reserved_for": run,
            "object_ids": batch.object_ids(),
        }
    }
    try:
        started = _trigger(run, conf)
    except Exception as err:  # DAG not parsed yet, metadata DB down: the batch is stored; HubSpot retries
        raise _unavailable(f"starting {EVENTS_DAG}", err) from err
    log.info(
        "hubspot webhook: batch %s: %d event(s), %d duplicate(s), stored %s, run %s %s",
        batch.batch_id[:12],
        len(batch.events),
        len(duplicates),
        key,
        run,
        "queued" if started else "already there",
    )
    return JSONResponse({**answer, "runId": run, "started": started, "stored": key})
