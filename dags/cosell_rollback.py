"""### cosell_rollback — put one co-sell record back to a point in time, or undo one sync run

Say what to roll back with **exactly one** of:

- `opportunity_id` — a Partner Central opportunity (O...) linked to a HubSpot deal, with `target_timestamp`;
- `deal_id` — a HubSpot deal id, with `target_timestamp`: the opportunity it is linked to (the sync's
  baseline, else the deal's `aws_opportunity_id`) is rolled back;
- `run_id` — a `cosell_reconcile` run id: every record that run changed is put back, each field to the
  value it had just before that run (the `old` value of the run's own audit entries). No
  `target_timestamp`. A field changed again since that run is skipped (`CHANGED_SINCE_RUN`): undoing the
  run must not overwrite a newer edit. Records the run *created* are listed, not deleted. A run that
  failed before its `commit` can be named too, once a later run has audited its writes (the next
  successful `cosell_reconcile` does).

None, or more than one, fails the run at once (no retries) with the reason; so do a missing
`target_timestamp` (with `opportunity_id`/`deal_id`) and a `target_timestamp` given with `run_id`.

With a timestamp, the value of each mapped field at that time is rebuilt from the audit trail (every
change the sync applied up to then). The record's current values are read in AWS Partner Central and
HubSpot (deal, company, contact) and the target value is written to each side that differs.

**`dry_run` is on by default**: the first run only logs and returns the plan — per field the current
Partner Central value, the current HubSpot value, the target value and what would be written. Values are
shown whole; a value longer than 60 characters is shown by its length in the table and, below it, as a
word diff from each side's current value to the target (`[-removed-]{+added+}`, long unchanged stretches
shortened to `...(N unchanged)...`). Trigger again with `dry_run` off to apply it.

**`systems`**: `both` (default), `hubspot` or `partner_central` — only the chosen side is written. With
`both`, a field is rolled back on both sides or not at all, and the baseline records the restored value, so
the next `cosell_reconcile` run sees nothing to do. With one side, the other is not touched and the
baseline of a field the two sides now disagree on stays as it was (the last value both agreed on). **The
next `cosell_reconcile` run then sees the rolled-back side as changed since the last sync and carries its
value to the other side**, exactly like a person's edit there: review-state gating applies (a field Partner
Central does not take now is deferred), and a field that also changed on the other side since the last
sync is a conflict, settled by its strategy (`conflicts` in the sync config). So a one-sided rollback is
not a lasting difference between the systems; it chooses which side the restored value enters through.
A field the sync never carries from the chosen side (a one-way field owned by the other side) is skipped,
since the next run would undo it. A field on which only the other side differs is skipped
(`SYSTEM_NOT_SELECTED`).

A field is also reported as skipped with the reason when: the audit holds no value for it at that time;
it has a pending manual conflict; Partner Central's review state forbids the change (`Submitted` /
`In review`, not editable in `Action Required`, locked after `Approved`, `Rejected`); or its HubSpot object
does not exist. Partner Central is written with read, merge and `UpdateOpportunity` under the optimistic
lock, HubSpot with batch updates; then one `ROLLBACK` audit entry per side written (old and new value,
`targetTimestamp` or `rolledBackRun`, `systems`) and the baseline.

**Automatic rollback** is not this DAG: in `cosell_reconcile`, when Partner Central rejects a record's
update, that record's HubSpot writes of the same run are held back (`rollback.auto_revert_hubspot`), with a
note on the deal, a task for its owner and an `AUTO_ROLLBACK` audit entry.

Params: `opportunity_id`, `deal_id`, `run_id` (exactly one), `target_timestamp` (ISO 8601; UTC when it has
no offset), `fields` (mapping field names such as `next_steps`, `expected_spend_amount`; empty = all),
`systems`, `dry_run` (default true). A run conf key that is none of these fails the run at once, listing
the valid keys.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from cosell_runtime.params import dry_run_param
from cosell_sync.params import ISO_TIMESTAMP

DEFAULT_ARGS = {
    "owner": "cosell-sync",
    "retries": 1,
    "retry_delay": pendulum.duration(minutes=1),
}


@dag(
    dag_id="cosell_rollback",
    description="Restore a record (opportunity or deal) to a point in time, or undo one sync run.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["cosell", "partner-central", "hubspot", "rollback"],
    doc_md=__doc__,
    params={
        "opportunity_id": Param(
            None,
            type=["null", "string"],
            title="Opportunity id",
            description="The Partner Central opportunity id (O...), linked to a HubSpot deal. "
            "Give exactly one of opportunity id, deal id or run id.",
        ),
        "deal_id": Param(
            None,
            type=["null", "string"],
            title="HubSpot deal id",
            description="Roll back the opportunity this HubSpot deal is linked to (instead of its id).",
        ),
        "run_id": Param(
            None,
            type=["null", "string"],
            title="Sync run id to undo",
            description="A cosell_reconcile run id: every record it changed goes back to its values just "
            "before that run. No target time needed. A failed run's writes can be undone once the next "
            "successful run has audited them.",
        ),
        "target_timestamp": Param(
            None,
            type=["null", "string"],
            # Not format "date-time": it refuses a time without an offset, which this param reads as UTC.
            pattern=f"^{ISO_TIMESTAMP}$",
            title="Target time",
            description="Restore the values the record had at this instant (ISO 8601, UTC if no offset); "
            "with an opportunity or deal id, not with a run id.",
        ),
        "fields": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            title="Fields",
            description="Mapping field names to restore (e.g. next_steps); empty restores every field.",
        ),
        "systems": Param(
            "both",
            type="string",
            enum=["both", "hubspot", "partner_central"],
            title="Systems",
            description="Which side to write. One side only: the next cosell_reconcile carries the value "
            "to the other side like an edit made there.",
        ),
        "dry_run": dry_run_param(True, "Plan only: write nothing."),
    },
    render_template_as_native_obj=True,
)
def cosell_rollback() -> None:
    """Wire the single rollback step; the logic lives in ``cosell_sync.rollback``."""

    @task(pool="partner_central_writes")
    def rollback(**context: object) -> dict:
        """Plan from the audit trail; unless a dry run, write the chosen sides, audit, baseline."""
        from cosell_runtime.tasks import rollback as rollback_task

        return rollback_task(context)

    rollback()


cosell_rollback()
