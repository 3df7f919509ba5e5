"""### cosell_events — sync the records named in Partner Central EventBridge events, within seconds

Started per event by an EventBridge API destination (`POST /api/v2/dags/cosell_events/dagRuns`, see the
README's deploy section and `deploy/cloudformation/cosell-events.yaml`), never on a time schedule:
`cosell_reconcile` stays the safety net for events that never arrive (delivery is best effort).
Where the API server cannot be reached from AWS, EventBridge feeds an SQS queue instead: with
`events.sqs_queue_url` set (or `COSELL_EVENTS_SQS_QUEUE_URL`), the DAG is scheduled on that queue's asset, the
triggerer receives the messages (runs `asset_triggered__...`), and `finish` deletes each message only once
its event is settled (see the README's "Deploy: Partner Central events over SQS").

Run conf (what the API destination's input transformer posts):

```json
{"dag_run_id": "eb-<event id>", "logical_date": null, "conf": {"event": <the EventBridge event>}}
```

The run id comes from the event id, so a redelivered event gets HTTP 409 and never a second run. A batch
can come as `{"events": [...]}`. Each event id is also claimed in the state table, so an event that reaches
Airflow twice by other paths (a run started by hand, the SQS path) is synced once: the second run audits it
as `EVENT_DUPLICATE` and writes nothing.

What each detail-type does (source `aws.partnercentral-selling`; events of another catalog are ignored):

- **Opportunity Created / Updated / Accepted / Rejected**: the reconcile steps for those opportunities,
  `extract_partner_central` to `commit` (mapping, gating, conflicts, audit), then `sync_insights`,
  `sync_engagements` (their AWS summary is read), `sync_owners`, `sync_tags`, `sync_solutions` and
  `sync_snapshots`, each restricted to those opportunities.
- **Engagement Invitation Created / Accepted / Rejected / Expired**: `sync_invitations`,
  `wait_for_accept_tasks`, `finish_invitations`.
- **Engagement Created / Updated, Engagement Member Added / Joined, (Engagement) Resource Snapshot
  Created**: `sync_engagements` and `sync_snapshots`, the named engagements read.
- **Anything else, or a malformed event**: logged and audited (`EVENT_IGNORED`), never an error.

**HubSpot webhooks** (`POST <api-server>/cosell/hubspot/webhooks`, see the README's "HubSpot webhooks"):
the receiver verifies and stores each batch, then starts a run `hs-<batch id>` with conf
`{"hubspot": {"batch_key", "batch_id", "reserved_for", "object_ids"}}`. `prepare` reads the batch from
S3 and maps its events to opportunities: deal events through the deal's `aws_opportunity_id`, company
and contact events through their associated deals (v4 batch association reads), association changes
through the deal on either side; then the same opportunity steps run. Events naming no linked
opportunity (a new deal: the scheduled run creates its opportunity) and malformed ones are audited
`EVENT_IGNORED`; each event key `hs-<portalId>-<eventId>-<subscriptionId>` is claimed like an
EventBridge id.

The steps are `cosell_reconcile`'s own chain (`cosell_runtime.chain.build_sync_chain`, same tasks, same
order); the opportunity steps are skipped when no event names an opportunity. `prepare` takes the catalog's
lease like any writing run, so an event run and a scheduled run never write at the same time; while another
run holds it, `prepare` is rescheduled every `lease.event_recheck_seconds` (5) without holding a worker
slot. **finish** audits each event (`events#<catalog>` partition: `EVENT_PROCESSED` / `EVENT_IGNORED` /
`EVENT_DUPLICATE`), marks them processed, gives the lease back, logs each event's event-to-update time and,
when opportunities were synced, writes `report.json` like `cosell_reconcile`'s `report` (record errors fail
it the same way).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from cosell_runtime.assets import events_schedule
from cosell_runtime.chain import build_sync_chain
from cosell_runtime.tasks import release_lease_on_failure

DEFAULT_ARGS = {
    "owner": "cosell-sync",
    "retries": 2,
    "retry_delay": pendulum.duration(seconds=10),
    "retry_exponential_backoff": True,
}


@dag(
    dag_id="cosell_events",
    description="Sync the records named in Partner Central EventBridge events (started per event).",
    # None (REST only) unless the sync config names an SQS queue: then the queue's asset, watched by the
    # triggerer; the REST API can still start runs either way.
    schedule=events_schedule(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    # One run writes at a time (the catalog's lease); a few more wait in a rescheduled prepare, no slot
    # held, so a burst of events queues in the scheduler instead of piling up rescheduled tasks.
    max_active_runs=4,
    on_failure_callback=release_lease_on_failure,
    default_args=DEFAULT_ARGS,
    tags=["cosell", "partner-central", "hubspot", "events"],
    doc_md=__doc__,
    params={
        "event": Param(
            None,
            type=["null", "object", "string"],
            title="Event",
            description="One EventBridge event (as the API destination posts it; JSON text is read too).",
        ),
        "events": Param(
            None,
            type=["null", "array"],
            title="Events",
            description="A batch of EventBridge events.",
        ),
        "hubspot": Param(
            None,
            type=["null", "object"],
            title="HubSpot webhook batch",
            description="Set by the webhook receiver: batch_key (S3, under the storage prefix), batch_id, "
            "reserved_for (the run id its events were reserved for), object_ids.",
        ),
    },
    render_template_as_native_obj=True,
)
def cosell_events() -> None:
    """Wire ``cosell_reconcile``'s steps for the records the events name (``cosell_runtime.chain``)."""
    build_sync_chain("events")


cosell_events()
