"""### cosell_assign — assign one Partner Central opportunity to a HubSpot owner

What `cosell_reconcile`'s `sync_owners` step does when a deal's owner changes, for one record, from the
trigger form: Partner Central's `AssignOpportunity` with the owner's e-mail, first and last name (HubSpot's
owners API, found by `assignee_email`) and business title (the deal property `owners.business_title_property`
when configured and set, else `owners.default_business_title`).

**`dry_run` is on by default**: the first run finds the owner and the linked deal, reads the opportunity
and logs its current owner -> the new one, and writes nothing. Trigger again with `dry_run` off to apply:
one `AssignOpportunity` (under the catalog's lease, in the `partner_central_writes` pool), one
`ASSIGN_OPPORTUNITY` audit entry (owner ids, never e-mails), the deal's `aws_assigned_partner_user` and the
note "Opportunity reassigned to <name>" (once per run, whatever retries do). The deal's HubSpot owner is
left as it is; the next owner change on the deal reassigns the opportunity again.

Checked before anything is read (the run fails at once, without retries, naming the param and the rule):
exactly one of `deal_id` / `opportunity_id`; `assignee_email` an address Partner Central's `Email` pattern
accepts (taken in lower case). Failing at once too: no active HubSpot owner with that address, no linked
deal, an owner without a first or last name, Partner Central refusing the assignment (e.g. a `Rejected`
opportunity).

Params: `deal_id` or `opportunity_id` (one of them), `assignee_email`, `catalog` (empty = the connection's),
`dry_run` (default true). A run conf key that is none of these fails the run at once, listing the valid keys.
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
    dag_id="cosell_assign",
    description="Assign one Partner Central opportunity to a HubSpot owner (dry run first).",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["cosell", "partner-central", "hubspot", "owners"],
    doc_md=__doc__,
    params={
        "deal_id": Param(
            None,
            type=["null", "string"],
            title="Deal id",
            description="The HubSpot deal whose opportunity is assigned (or give opportunity_id).",
        ),
        "opportunity_id": Param(
            None,
            type=["null", "string"],
            title="Opportunity id",
            description="The Partner Central opportunity (O...) to assign (or give deal_id).",
        ),
        "assignee_email": Param(
            "",
            type="string",
            title="Assignee e-mail",
            description="E-mail of the HubSpot owner who becomes the opportunity's owner.",
        ),
        "catalog": catalog_param(),
        "dry_run": dry_run_param(True, "Show current -> new owner only: write nothing."),
    },
    render_template_as_native_obj=True,
)
def cosell_assign() -> None:
    """Wire the single assignment step; the logic lives in ``cosell_sync.owners``."""

    @task(pool="partner_central_writes")
    def assign(**context: object) -> dict:
        """Find the owner and the deal, show current -> new; unless a dry run, assign, audit, note."""
        from cosell_runtime.tasks import assign_opportunity

        return assign_opportunity(context)

    assign()


cosell_assign()
