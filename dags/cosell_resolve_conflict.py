"""### cosell_resolve_conflict — apply a person's decision on a manual co-sell conflict

When a field listed under `conflicts.manual_resolution` changes differently in HubSpot and in AWS Partner
Central, `cosell_reconcile` freezes it: a pending conflict in the state table, a task for the deal owner
(its body names the conflict id) and the deal's `aws_conflict_status` set to `Pending`. Trigger this DAG
from the form to settle it:

- the value **recorded in the conflict** for the chosen side is written to the other system (Partner
  Central: read, merge, `UpdateOpportunity` under the optimistic lock and the review-state rules;
  HubSpot: the deal, company or contact the field lives on);
- the field's baseline moves to that value, a `CONFLICT_RESOLVED` audit entry records old and new value,
  who decided and why, the HubSpot task is completed and the deal's `aws_conflict_status` becomes
  `Resolved` when nothing else is pending on it; the conflict is marked `RESOLVED` last.

If Partner Central cannot take the value now (the opportunity is `Submitted` / `In review`, the field is
locked after approval...), the task fails with the exact reason and the conflict stays `PENDING`. That
failure, an unknown conflict id, one resolved the other way and an unknown run conf key fail at once,
without retries.
Running it again for a conflict already resolved the same way reports "already resolved" and writes
nothing; resolving it the other way is refused.

**Custom value.** `CUSTOM_VALUE` with `custom_value` writes that value to *both* systems under the same rules
(Partner Central first: read, merge, `UpdateOpportunity` under the lock and the review state; then the HubSpot
batch update), moves the baseline to it and audits `CONFLICT_RESOLVED` with the custom value (one entry per
system). `CUSTOM_VALUE` without `custom_value` fails at once, without retries.

**Conflict types.** Every conflict carries a `conflict_type`: `SIMULTANEOUS_UPDATE` (both sides changed the
field since the last sync), `STALE_DATA` (Partner Central changed it while the sync was writing),
`LOCKED_FIELD` (HubSpot changed a field Partner Central locks after approval; Partner Central's value was
already written back) or `REJECTED_VALUE` (Partner Central rejected HubSpot's value). A locked field or a
rejected value is settled with `USE_PARTNER_CENTRAL_VALUE` or `CUSTOM_VALUE`.

Params: `conflict_id` (from the HubSpot task), `resolution` (`USE_HUBSPOT_VALUE` |
`USE_PARTNER_CENTRAL_VALUE` | `CUSTOM_VALUE`), `custom_value` (with `CUSTOM_VALUE` only), `reason` (free text,
kept in the audit trail), `resolved_by` (a user id such as the HubSpot owner id — never an email address).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

DEFAULT_ARGS = {
    "owner": "cosell-sync",
    "retries": 1,
    "retry_delay": pendulum.duration(minutes=1),
}


@dag(
    dag_id="cosell_resolve_conflict",
    description="Settle a pending manual co-sell conflict: the chosen side's value goes to the other system.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["cosell", "partner-central", "hubspot", "conflicts"],
    doc_md=__doc__,
    params={
        "conflict_id": Param(
            type="string",
            minLength=1,
            title="Conflict id",
            description="The id in the HubSpot task, e.g. conf-0123456789abcdef.",
        ),
        "resolution": Param(
            type="string",
            enum=["USE_HUBSPOT_VALUE", "USE_PARTNER_CENTRAL_VALUE", "CUSTOM_VALUE"],
            title="Resolution",
            description=(
                "Which side's recorded value wins (written to the other system), or CUSTOM_VALUE: "
                "the custom value below is written to both."
            ),
        ),
        "custom_value": Param(
            "",
            type="string",
            title="Custom value",
            description=(
                "Only with CUSTOM_VALUE (required there): the value written to HubSpot and Partner Central, "
                "in the form the task shows values (e.g. 2027-06-30, 424242)."
            ),
        ),
        "reason": Param("", type="string", title="Reason", description="Why (kept in the audit trail)."),
        "resolved_by": Param(
            type="string",
            minLength=1,
            # A user id, not an email: the audit trail keeps personal data out of who-did-what.
            pattern=r"^[^@\s]+$",
            title="Resolved by",
            description="Your user id (e.g. HubSpot owner id). Not an email address.",
        ),
    },
)
def cosell_resolve_conflict() -> None:
    """Wire the single resolve step; the logic lives in ``cosell_sync.resolution``."""

    @task(pool="partner_central_writes")
    def resolve(**context: object) -> dict:
        """Write the chosen value to the other system, audit it, close the task and the conflict."""
        from cosell_runtime.tasks import resolve_conflict

        return resolve_conflict(context)

    resolve()


cosell_resolve_conflict()
