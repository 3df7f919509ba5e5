"""### cosell_snapshot — take one resource snapshot of an opportunity in its engagement, on demand

Partner Central's `CreateResourceSnapshot` for one linked opportunity: an immutable, numbered copy
(`Revision`) of the opportunity's view (template `snapshots.template`), shared with the members of its
engagement. `cosell_reconcile`'s `sync_snapshots` step keeps a snapshot job running for every open linked
opportunity, which takes a revision whenever the opportunity changes; this DAG is for a snapshot *now*
(before a call with AWS, say), whatever the job does.

**`dry_run` is on by default**: the first run finds the linked deal and the engagement and logs the latest
revision the sync knows, and writes nothing. Trigger again with `dry_run` off to apply: one
`CreateResourceSnapshot` (ClientToken from the run: a retried task makes no second revision; under the
catalog's lease, in the `partner_central_writes` pool), one `CREATE_RESOURCE_SNAPSHOT` audit entry (ids
only), and the deal's `aws_total_resources`, `aws_last_resource_upload`, `aws_partner_resources` updated
with a note for the new revision (once, whatever retries do).

Failing at once, without retries (naming the param and the rule): not exactly one of `deal_id` /
`opportunity_id`, an `opportunity_id` that is not `O` and digits, no linked deal, an opportunity without
an engagement (submit it to AWS first), Partner Central refusing the snapshot.

**Comparison** (`compare_revision`, default 0 = off): the task `compare_snapshot` reads that revision
(`GetResourceSnapshot`; its `Payload` is the template's view, `OpportunitySummary`) and the opportunity now
(`GetOpportunity`), compares them field by field and writes the differences (field, value in the snapshot,
value now) as JSON to S3, `runs/{catalog}/{run_id}/snapshot-compare.json`; its XCom holds the key, the counts
and the names of the fields that differ (the log names fields, never values). It reads only. Partner Central
has no restore: to undo what the sync wrote, use `cosell_rollback` (the audit trail); the comparison shows
what a snapshot held. With the default `dry_run`, `create_snapshot` only looks, so a comparison run writes
nothing to Partner Central or HubSpot.

Params: `deal_id` or `opportunity_id` (one of them), `catalog` (empty = the connection's), `dry_run`
(default true), `compare_revision` (default 0). A run conf key that is none of these fails the run at once,
listing the valid keys.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from cosell_runtime.params import catalog_param, dry_run_param

DEFAULT_ARGS = {
    "owner": "cosell-sync",
    "retries": 1,
    "retry_delay": pendulum.duration(minutes=1),
}


@dag(
    dag_id="cosell_snapshot",
    description="Take one resource snapshot of a linked opportunity in its engagement (dry run first).",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["cosell", "partner-central", "hubspot", "snapshots"],
    doc_md=__doc__,
    params={
        "deal_id": Param(
            None,
            type=["null", "string"],
            title="Deal id",
            description="The HubSpot deal whose opportunity is snapshotted (or give opportunity_id).",
        ),
        "opportunity_id": Param(
            None,
            type=["null", "string"],
            title="Opportunity id",
            description="The Partner Central opportunity (O...) to snapshot (or give deal_id).",
        ),
        "catalog": catalog_param(),
        "dry_run": dry_run_param(
            True, "Show the opportunity, engagement and latest revision only: write nothing."
        ),
        "compare_revision": Param(
            0,
            type=["null", "integer"],
            minimum=0,
            title="Compare revision",
            description="Compare this snapshot revision with the opportunity now (report to S3); 0: off.",
        ),
    },
    render_template_as_native_obj=True,
)
def cosell_snapshot() -> None:
    """Wire the single snapshot step; the logic lives in ``cosell_sync.snapshots``."""

    @task(pool="partner_central_writes")
    def create_snapshot(**context: object) -> dict:
        """Find the deal and the engagement; unless a dry run, snapshot, audit, show it on the deal."""
        from cosell_runtime.tasks import create_snapshot

        return create_snapshot(context)

    @task
    def compare_snapshot(**context: object) -> dict:
        """With ``compare_revision``: that snapshot vs the opportunity now, reported to S3 (key to XCom)."""
        from cosell_runtime.tasks import compare_snapshot

        return compare_snapshot(context)

    create_snapshot() >> compare_snapshot()


cosell_snapshot()
