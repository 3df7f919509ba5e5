"""### cosell_catalog — the partner's solutions as HubSpot products, one product per solution

Runs daily (the `products.schedule` key of the sync config) and on demand. It lists the partner's solutions
in the catalog (`ListSolutions`, every page) and keeps one HubSpot product per solution, created or updated
by batch upsert on the unique product property `aws_solution_id` (100 per call; created by
`cosell_hubspot_setup`). Mapped: name, `hs_sku` (the solution id), `aws_solution_category`,
`aws_solution_status`, `aws_solution_catalog`, and `price` from `products.prices` (else 0). Only new or
changed solutions are written: an unchanged catalog costs its `ListSolutions` pages and one product search.

A solution no longer listed has its product **archived** (never deleted); one that comes back gets its
product again (upsert). Every product write is audited (`CREATE_PRODUCT`, `UPDATE_PRODUCT`,
`ARCHIVE_PRODUCT`, partition `solution#{catalog}#{solution id}`). A product HubSpot refuses is logged and
audited as failed; the others are written, then the run fails (without retries) with the count.

A deal's line items of these products are its opportunity's associated solutions: the `sync_solutions` step
of `cosell_reconcile` keeps them in step both ways.

Params: `catalog` (empty = the connection's), `dry_run` (log what would be created, updated and archived;
write nothing). A run conf key that is none of these fails the run at once, listing the valid keys.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from cosell_runtime.params import catalog_param, dry_run_param
from cosell_sync.schedule import catalog_schedule

DEFAULT_ARGS = {
    "owner": "cosell-sync",
    "retries": 2,
    "retry_delay": pendulum.duration(minutes=1),
}


@dag(
    dag_id="cosell_catalog",
    description="Partner Central solutions as HubSpot products (upserted; archived when gone), daily.",
    schedule=CronTriggerTimetable(catalog_schedule(), timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["cosell", "partner-central", "hubspot", "catalog"],
    doc_md=__doc__,
    params={
        "catalog": catalog_param(),
        "dry_run": dry_run_param(
            False, "Log the products that would be created, updated or archived; write nothing."
        ),
    },
    render_template_as_native_obj=True,
)
def cosell_catalog() -> None:
    """Wire the single catalog step; the logic lives in ``cosell_sync.catalog``."""

    @task
    def sync_products(**context: object) -> dict:
        """ListSolutions, every page; products upserted on aws_solution_id; gone solutions' archived."""
        from cosell_runtime.tasks import catalog_sync

        return catalog_sync(context)

    sync_products()


cosell_catalog()
