"""### cosell_events — sync the records named in Partner Central EventBridge events, within seconds

Started per event by an EventBridge API destination (`POST /api/v2/dags/cosell_events/dagRuns`, see the
README's deploy section and `deploy/cloudformation/cosell-events.yaml`), never on a schedule:
`cosell_reconcile` stays the safety net for events that never arrive (delivery is best effort).

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
  `extract_partner_central` to `commit` (mapping, gating, conflicts, audit), then `sync_insights` and
  `sync_engagements` (their AWS summary is read).
- **Engagement Invitation Created / Accepted / Rejected / Expired**: `sync_invitations`,
  `wait_for_accept_tasks`, `finish_invitations`.
- **Engagement Created / Updated, Engagement Member Added / Joined, (Engagement) Resource Snapshot
  Created**: `sync_engagements`, the named engagements read.
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

The steps are `cosell_reconcile`'s own task functions (`cosell_runtime.tasks`); the opportunity steps are
skipped when no event names an opportunity. `prepare` takes the catalog's lease like any writing run, so an
event run and a scheduled run never write at the same time; while another run holds it, `prepare` is
rescheduled every `lease.event_recheck_seconds` (5) without holding a worker slot. **finish** audits each
event (`events#<catalog>` partition: `EVENT_PROCESSED` / `EVENT_IGNORED` / `EVENT_DUPLICATE`), marks them
processed, gives the lease back, logs each event's event-to-update time and, when opportunities were
synced, writes `report.json` like `cosell_reconcile`'s `report` (record errors fail it the same way).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from cosell_runtime.tasks import release_lease_on_failure
from cosell_runtime.triggers import PartnerCentralJobsSensor

DEFAULT_ARGS = {
    "owner": "cosell-sync",
    "retries": 2,
    "retry_delay": pendulum.duration(seconds=10),
    "retry_exponential_backoff": True,
}


@dag(
    dag_id="cosell_events",
    description="Sync the records named in Partner Central EventBridge events (started per event).",
    schedule=None,
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
    """Wire ``cosell_reconcile``'s steps for the records an event names (``cosell_runtime.tasks``)."""

    @task(retry_delay=pendulum.duration(seconds=5))
    def prepare(**context: object) -> dict:
        """Parse the events, take the catalog's lease, claim the event ids, fix the run."""
        from cosell_runtime.tasks import events_prepare

        return events_prepare(context)

    @task(pool="partner_central_writes")
    def sync_invitations(run: dict) -> dict:
        """Invitation events: referrals into deals, decisions to Partner Central (else nothing)."""
        from cosell_runtime.tasks import events_sync_invitations

        return events_sync_invitations(run)

    @task
    def finish_invitations(run: dict, started: dict) -> dict:
        """Accepted invitations: the new opportunity linked to the same deal."""
        from cosell_runtime.tasks import invitations_finish

        return invitations_finish(run, started)

    @task
    def extract_partner_central(run: dict) -> dict:
        """Read the named opportunities (skipped, with the steps up to commit, when none is named)."""
        from cosell_runtime.tasks import events_extract_partner_central

        return events_extract_partner_central(run)

    @task
    def extract_hubspot(run: dict, pc: dict) -> dict:
        """Batch-read the linked deals with their company and contacts."""
        from cosell_runtime.tasks import reconcile_extract_hubspot

        return reconcile_extract_hubspot(run, pc)

    @task
    def plan(run: dict, pc: dict, hs: dict) -> dict:
        """Three-way diff, conflicts and review-state gating, as in cosell_reconcile."""
        from cosell_runtime.tasks import reconcile_plan

        return reconcile_plan(run, pc, hs)

    @task(pool="partner_central_writes")
    def prepare_creates(run: dict, planned: dict) -> dict:
        """Link deals whose opportunity exists (search) before any create."""
        from cosell_runtime.tasks import reconcile_prepare_creates

        return reconcile_prepare_creates(run, planned)

    @task(pool="partner_central_writes")
    def apply_partner_central(run: dict, planned: dict, creates: dict) -> dict:
        """Creates, updates (optimistic lock) and submissions at 1 write/s."""
        from cosell_runtime.tasks import reconcile_apply_partner_central

        return reconcile_apply_partner_central(run, planned, creates)

    @task
    def apply_hubspot(run: dict, planned: dict, pc_applied: dict) -> dict:
        """Deal creates/updates, notes and conflict tasks."""
        from cosell_runtime.tasks import reconcile_apply_hubspot

        return reconcile_apply_hubspot(run, planned, pc_applied)

    @task
    def commit(run: dict, planned: dict, pc_applied: dict, hs_applied: dict) -> dict:
        """Audit, baseline and retry queue for the named records (the watermark does not move)."""
        from cosell_runtime.tasks import reconcile_commit

        return reconcile_commit(run, planned, pc_applied, hs_applied)

    @task
    def sync_insights(run: dict, pc: dict, committed: dict) -> dict:
        """AWS insights of the named opportunities into their deals."""
        from cosell_runtime.tasks import reconcile_sync_insights

        return reconcile_sync_insights(run, pc)

    @task(pool="partner_central_writes", trigger_rule="none_failed")
    def sync_engagements(run: dict, pc: dict | None, hs: dict | None) -> dict:
        """Named engagements read; the AWS summary of named opportunities; into their deals."""
        from cosell_runtime.tasks import events_sync_engagements

        return events_sync_engagements(run, pc, hs)

    @task(trigger_rule="none_failed")
    def finish(
        run: dict,
        pc: dict | None,
        hs: dict | None,
        committed: dict | None,
        insights: dict | None,
        invitations: dict,
        linked: dict,
        engagements: dict,
    ) -> dict:
        """Audit each event, mark it processed, release the lease; report.json when records were synced."""
        from cosell_runtime.tasks import events_finish

        return events_finish(run, pc, hs, committed, insights, invitations, linked, engagements)

    run = prepare()
    invitations = sync_invitations(run)
    accepted = PartnerCentralJobsSensor(
        task_id="wait_for_accept_tasks",
        kind="accept_invitation_task",
        job_ids=invitations["tasks"],
        catalog=run["catalog"],
        retries=3,
    )
    linked = finish_invitations(run, invitations)
    accepted >> linked
    pc = extract_partner_central(run)
    linked >> pc
    hs = extract_hubspot(run, pc)
    planned = plan(run, pc, hs)
    creates = prepare_creates(run, planned)
    waited = PartnerCentralJobsSensor(
        task_id="wait_for_bulk_jobs", job_ids=creates["jobs"], catalog=run["catalog"], retries=3
    )
    pc_applied = apply_partner_central(run, planned, creates)
    waited >> pc_applied
    hs_applied = apply_hubspot(run, planned, pc_applied)
    committed = commit(run, planned, pc_applied, hs_applied)
    insights = sync_insights(run, pc, committed)
    engagements = sync_engagements(run, pc, hs)
    committed >> engagements
    finish(run, pc, hs, committed, insights, invitations, linked, engagements)


cosell_events()
