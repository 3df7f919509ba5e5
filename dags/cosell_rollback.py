"""### cosell_rollback — restore one co-sell record to the values it had at a point in time

Rebuilds the value each mapped field had at `target_timestamp` from the audit trail (every change the
sync applied up to then), reads the record's current values in AWS Partner Central and HubSpot (deal,
company, contact), and writes the target value to each side that differs.

**`dry_run` is on by default**: the first run only logs and returns the plan — per field the current
Partner Central value, the current HubSpot value, the target value and what would be written. Trigger
again with `dry_run` off to apply it.

A field is rolled back on both sides or not at all, and is reported as skipped with the reason when:
the audit holds no value for it at that time; it has a pending manual conflict; Partner Central's review
state forbids the change (`Submitted` / `In review`, not editable in `Action Required`, locked after
`Approved`, `Rejected`); the sync never writes that side for a one-way field; or its HubSpot object does
not exist. Partner Central is written with read, merge and `UpdateOpportunity` under the optimistic lock,
HubSpot with batch updates; then one `ROLLBACK` audit entry per side written (old and new value,
`targetTimestamp`) and the baseline, so the next `cosell_reconcile` run sees nothing to do.

Params: `opportunity_id`, `target_timestamp` (ISO 8601; UTC when it has no offset), `fields` (mapping
field names such as `next_steps`, `expected_spend_amount`; empty = all), `dry_run` (default true).
A run conf key that is none of these fails the run at once, listing the valid keys.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from cosell_sync.params import ISO_TIMESTAMP

DEFAULT_ARGS = {
    "owner": "cosell-sync",
    "retries": 1,
    "retry_delay": pendulum.duration(minutes=1),
}


@dag(
    dag_id="cosell_rollback",
    description="Restore one opportunity's fields, on both sides, to their values at a point in time.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["cosell", "partner-central", "hubspot", "rollback"],
    doc_md=__doc__,
    params={
        "opportunity_id": Param(
            type="string",
            minLength=1,
            title="Opportunity id",
            description="The Partner Central opportunity id (O...), linked to a HubSpot deal.",
        ),
        "target_timestamp": Param(
            type="string",
            # Not format "date-time": it refuses a time without an offset, which this param reads as UTC.
            pattern=f"^{ISO_TIMESTAMP}$",
            title="Target time",
            description="Restore the values the record had at this instant (ISO 8601, UTC if no offset).",
        ),
        "fields": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            title="Fields",
            description="Mapping field names to restore (e.g. next_steps); empty restores every field.",
        ),
        "dry_run": Param(True, type="boolean", title="Dry run", description="Plan only: write nothing."),
    },
    render_template_as_native_obj=True,
)
def cosell_rollback() -> None:
    """Wire the single rollback step; the logic lives in ``cosell_sync.rollback``."""

    @task(pool="partner_central_writes")
    def rollback(**context: object) -> dict:
        """Plan the rollback from the audit trail; unless a dry run, write both sides, audit, baseline."""
        from cosell_runtime.tasks import rollback as rollback_task

        return rollback_task(context)

    rollback()


cosell_rollback()
