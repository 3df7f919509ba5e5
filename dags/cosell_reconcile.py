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
   `ConflictException`), submissions. **wait_for_submissions** defers until AWS has started each
   submission's engagement (`StartEngagementFromOpportunityTask`), no worker slot held.
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
   **sync_snapshots** (pool `partner_central_writes`, after `sync_engagements`): one resource snapshot job
   per linked opportunity with an engagement, started while the opportunity is open, stopped when it
   closes, deleted when the engagement is over; new snapshot revisions reach the deal
   (`aws_partner_resources`, a note).
   **sync_customer_accounts** (opt-in, `customer_accounts.enabled`; after `commit`): each company linked to a
   co-sell deal gets an AWS customer account (`CreateCustomerAccount`, ClientToken from the company;
   `UpdateCustomerAccount` when its mapped values change); pending enrichments are polled and AWS's view
   (status, segment, industry, size, region, programs) is written back to the company; a duplicate match
   becomes one task on the company.
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
from airflow.sdk import CronDataIntervalTimetable, Param, dag

from cosell_runtime.chain import build_sync_chain
from cosell_runtime.params import catalog_param, dry_run_param
from cosell_runtime.tasks import release_lease_on_failure
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
        "dry_run": dry_run_param(False, "Plan only: write nothing to either system."),
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
        "catalog": catalog_param(),
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
    """Wire the reconcile steps (``cosell_runtime.chain``); every step's logic lives in ``cosell_sync``."""
    build_sync_chain("reconcile")


cosell_reconcile()
