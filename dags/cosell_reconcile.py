"""### cosell_reconcile — keep AWS Partner Central opportunities and HubSpot deals in step, both ways

Runs every 30 minutes (the `schedule` key of the sync config) and on demand from the trigger form.
Each run:

1. **prepare**: validates the sync config and the run's params, and fixes the time window
   (stored watermark minus a small overlap; everything in `full` mode; the data interval in a backfill).
   **sync_invitations**: AWS referrals addressed to us become deals (once, by `aws_invitation_id`);
   a seller's `aws_invitation_action` (Accept / Reject) goes to Partner Central; expired invitations close
   their deals. **wait_for_accept_tasks** defers while AWS accepts; **finish_invitations** links each new
   opportunity to the same deal.
2. **extract_partner_central** / **extract_hubspot**: list what changed on each side
   (`ListOpportunities` + `GetOpportunity` only for changed records; HubSpot search windowed past the
   10,000-result cap, batch reads of linked deals, companies and contacts). Snapshots go to S3 as Parquet.
3. **plan**: a three-way, per-field diff against the last-synced baseline, conflict strategies and
   Partner Central review-state gating. The full plan is written to S3.
4. **prepare_creates** (pool `partner_central_writes`): deals about to get an opportunity are looked up
   with `SearchOpportunities` (a deal whose link was lost is linked, never duplicated); more than
   `bulk.min_records` creates go as one `StartOpportunityBulkJob` (CSV in the state bucket).
   **wait_for_bulk_jobs** defers to the triggerer (no worker slot) until the job finishes.
5. **apply_partner_central** (pool `partner_central_writes`, 1 write/s): bulk results and single creates,
   full-payload updates with the current `LastModifiedDate` (re-read and re-merge on
   `ConflictException`), submissions.
6. **apply_hubspot**: batched creates/updates (100 per call, 207 handled per item), a note per deal,
   tasks for manual conflicts.
7. **commit**: audit entries (DynamoDB), baseline, retry queue and watermark — only for work that succeeded.
8. **sync_insights**: AWS insights (origin, co-sell motion, engagement and quality scores) from
   `SearchOpportunities`, 100 opportunities per call, into the deals whose insights changed.
   **sync_engagements**: each linked deal's engagement (id, derived status, member companies, dates, contexts)
   and AWS's view (`GetAwsOpportunitySummary`: AWS stage, involvement, AWS team, next steps), read only when
   the engagement's `ModifiedAt` moved or the opportunity changed (and every `insights.full_refresh_hours`);
   notes for a started engagement and new members; context edits made in HubSpot go to Partner Central
   (`UpdateEngagementContext`, optimistic lock, AWS's newer edit of a value is kept).
   **sync_owners** (pool `partner_central_writes`): a linked deal whose HubSpot owner changed since the last
   sync is reassigned in Partner Central (`AssignOpportunity`, assignee from HubSpot's owners API), gets
   `aws_assigned_partner_user` and the note "Opportunity reassigned to <name>"; an owner without a valid
   e-mail is that deal's error (`aws_sync_error`, retry queue), the others go on.
   **sync_tags** (pool `partner_central_writes`): opportunity tags both ways, three ways per key against the
   last agreed set: the deal's `aws_tags` (`key:value;...`) to `TagResource`/`UntagResource`, Partner
   Central's tags to the deal; both sides changed = a conflict on `aws_sync_error`, nothing overwritten;
   tags the model refuses (and `aws:` keys) are not sent, named on the deal, the rest applied. Reads the
   opportunities the run read or changed, and all linked ones each `tags.full_refresh_hours`.
   **sync_solutions** (pool `partner_central_writes`): a deal's line items of solution products (made by
   `cosell_catalog`) are its opportunity's associated solutions, three ways per solution against the last
   agreed set: a line item added in HubSpot -> `AssociateOpportunity` (at most 10), removed ->
   `DisassociateOpportunity`; a solution associated in Partner Central -> a line item on the deal (quantity 1,
   price `products.prices` or 0), disassociated -> its line items archived. What Partner Central refuses goes
   to `aws_sync_error` and the audit. AWS products and Marketplace offers go to deal properties.
9. **report**: a summary table per direction in the log and `report.json` in S3. A run with records it
   could not read or write, or requested ids that do not exist, then fails this task (once, no retries;
   everything else is committed and the failed records are retried next run), its message giving the
   counts; with `report.fail_on_record_errors: false` in the sync config it logs a WARNING instead.

Params: `mode` (`incremental` | `full`), `direction`, `dry_run` (writes nothing, logs and stores the plan),
`since` (ISO timestamp overriding the watermark; UTC when it has no offset), `catalog` (`AWS` | `Sandbox`;
empty = from the connection), `opportunity_ids` (restrict the run to these opportunities). A run conf key
that is none of these fails the run at `prepare`, listing the valid keys.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from cosell_runtime.tasks import release_lease_on_failure
from cosell_runtime.triggers import PartnerCentralJobsSensor
from cosell_sync.params import ISO_TIMESTAMP
from cosell_sync.schedule import reconcile_schedule

DEFAULT_ARGS = {
    "owner": "cosell-sync",
    "retries": 2,
    "retry_delay": pendulum.duration(minutes=1),
    "retry_exponential_backoff": True,
}


@dag(
    dag_id="cosell_reconcile",
    description="Two-way sync of Partner Central opportunities and HubSpot deals, scheduled or on demand.",
    schedule=CronDataIntervalTimetable(reconcile_schedule(), timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    # A failed run gives up the catalog's lease at once instead of blocking the next run until it expires.
    on_failure_callback=release_lease_on_failure,
    default_args=DEFAULT_ARGS,
    tags=["cosell", "partner-central", "hubspot"],
    doc_md=__doc__,
    params={
        "mode": Param(
            "incremental",
            enum=["incremental", "full"],
            title="Mode",
            description="incremental: changes since the watermark; full: every record.",
        ),
        "direction": Param(
            "both",
            enum=["both", "partner_central_to_hubspot", "hubspot_to_partner_central"],
            title="Direction",
            description="Which way changes may flow in this run.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Plan only: write nothing to either system.",
        ),
        "since": Param(
            None,
            type=["null", "string"],
            # Not format "date-time": it refuses a time without an offset, which this param reads as UTC.
            pattern=f"^({ISO_TIMESTAMP})?$",
            title="Since",
            description=(
                "Override the watermark: reconcile what changed after this instant "
                "(ISO 8601, e.g. 2026-11-02T10:00:00Z; UTC if no offset)."
            ),
        ),
        "catalog": Param(
            # "" rather than None: the trigger form shows an empty choice, not "null".
            "",
            type="string",
            enum=["", "AWS", "Sandbox"],
            title="Catalog",
            description="Partner Central catalog; empty uses the connection's catalog.",
        ),
        "opportunity_ids": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            title="Opportunity ids",
            description="Restrict the run to these opportunity ids.",
        ),
    },
    render_template_as_native_obj=True,
)
def cosell_reconcile() -> None:
    """Wire the reconcile steps; every step's logic lives in ``cosell_sync.reconcile``."""

    @task
    def prepare(**context: object) -> dict:
        """Validate config and params; fix the run's window."""
        from cosell_runtime.tasks import reconcile_prepare

        return reconcile_prepare(context)

    @task(pool="partner_central_writes")
    def sync_invitations(run: dict) -> dict:
        """AWS referrals (invitations to us) into deals, once; sellers' Accept/Reject to Partner Central."""
        from cosell_runtime.tasks import invitations_sync

        return invitations_sync(run)

    @task
    def finish_invitations(run: dict, started: dict) -> dict:
        """Accepted invitations: the new opportunity linked to the same deal; failures on the deal."""
        from cosell_runtime.tasks import invitations_finish

        return invitations_finish(run, started)

    @task
    def extract_partner_central(run: dict) -> dict:
        """List changed opportunities, read them, snapshot to S3."""
        from cosell_runtime.tasks import reconcile_extract_partner_central

        return reconcile_extract_partner_central(run)

    @task
    def extract_hubspot(run: dict, pc: dict) -> dict:
        """Search changed deals, batch-read linked ones with company and contacts, snapshot to S3."""
        from cosell_runtime.tasks import reconcile_extract_hubspot

        return reconcile_extract_hubspot(run, pc)

    @task
    def plan(run: dict, pc: dict, hs: dict) -> dict:
        """Three-way diff, conflicts and review-state gating; the plan goes to S3."""
        from cosell_runtime.tasks import reconcile_plan

        return reconcile_plan(run, pc, hs)

    @task(pool="partner_central_writes")
    def prepare_creates(run: dict, planned: dict) -> dict:
        """Link deals whose opportunity exists (search); start the bulk job of a large run."""
        from cosell_runtime.tasks import reconcile_prepare_creates

        return reconcile_prepare_creates(run, planned)

    @task(pool="partner_central_writes")
    def apply_partner_central(run: dict, planned: dict, creates: dict) -> dict:
        """Create, update (full payload, optimistic lock) and submit opportunities at 1 write/s."""
        from cosell_runtime.tasks import reconcile_apply_partner_central

        return reconcile_apply_partner_central(run, planned, creates)

    @task
    def apply_hubspot(run: dict, planned: dict, pc_applied: dict) -> dict:
        """Batched deal creates/updates, notes and conflict tasks."""
        from cosell_runtime.tasks import reconcile_apply_hubspot

        return reconcile_apply_hubspot(run, planned, pc_applied)

    @task
    def commit(run: dict, planned: dict, pc_applied: dict, hs_applied: dict) -> dict:
        """Audit, baseline, retry queue and watermark, for the work that succeeded."""
        from cosell_runtime.tasks import reconcile_commit

        return reconcile_commit(run, planned, pc_applied, hs_applied)

    @task
    def sync_insights(run: dict, pc: dict, committed: dict) -> dict:
        """AWS insights (SearchOpportunities, 100 per call) into the deals whose insights changed."""
        from cosell_runtime.tasks import reconcile_sync_insights

        return reconcile_sync_insights(run, pc)

    @task(pool="partner_central_writes")
    def sync_engagements(run: dict, pc: dict, hs: dict, committed: dict) -> dict:
        """Engagements and the AWS summary into changed deals; context edits to Partner Central."""
        from cosell_runtime.tasks import reconcile_sync_engagements

        return reconcile_sync_engagements(run, pc, hs)

    @task(pool="partner_central_writes")
    def sync_owners(run: dict, hs: dict, committed: dict) -> dict:
        """Deal owner changes to Partner Central (AssignOpportunity); assignee and note on the deal."""
        from cosell_runtime.tasks import reconcile_sync_owners

        return reconcile_sync_owners(run, hs)

    @task(pool="partner_central_writes")
    def sync_tags(run: dict, pc: dict, hs: dict, pc_applied: dict, committed: dict) -> dict:
        """Opportunity tags both ways (TagResource/UntagResource; the deal's aws_tags)."""
        from cosell_runtime.tasks import reconcile_sync_tags

        return reconcile_sync_tags(run, pc, hs, pc_applied)

    @task(pool="partner_central_writes")
    def sync_solutions(run: dict, pc: dict, hs: dict, committed: dict) -> dict:
        """Deal line items <-> the opportunity's associated solutions (Associate/DisassociateOpportunity)."""
        from cosell_runtime.tasks import reconcile_sync_solutions

        return reconcile_sync_solutions(run, pc, hs)

    @task
    def report(
        run: dict,
        pc: dict,
        hs: dict,
        committed: dict,
        insights: dict,
        invitations: dict,
        linked: dict,
        engagements: dict,
        owners: dict,
        tags: dict,
        solutions: dict,
    ) -> dict:
        """Log the run's summary table and store report.json."""
        from cosell_runtime.tasks import reconcile_report

        return reconcile_report(
            run,
            pc,
            hs,
            committed,
            insights,
            invitations,
            linked,
            owners,
            tags,
            solutions,
            engagements=engagements,
        )

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
    # Referral deals accepted this run are linked before the extract reads the linked deals.
    linked >> pc
    hs = extract_hubspot(run, pc)
    planned = plan(run, pc, hs)
    creates = prepare_creates(run, planned)
    # Deferred: the triggerer polls the job while no worker slot is held (a run without one passes at once).
    waited = PartnerCentralJobsSensor(
        task_id="wait_for_bulk_jobs", job_ids=creates["jobs"], catalog=run["catalog"], retries=3
    )
    pc_applied = apply_partner_central(run, planned, creates)
    waited >> pc_applied
    hs_applied = apply_hubspot(run, planned, pc_applied)
    committed = commit(run, planned, pc_applied, hs_applied)
    engagements = sync_engagements(run, pc, hs, committed)
    owners = sync_owners(run, hs, committed)
    tags = sync_tags(run, pc, hs, pc_applied, committed)
    solutions = sync_solutions(run, pc, hs, committed)
    report(
        run,
        pc,
        hs,
        committed,
        sync_insights(run, pc, committed),
        invitations,
        linked,
        engagements,
        owners,
        tags,
        solutions,
    )


cosell_reconcile()
