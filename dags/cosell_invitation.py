"""### cosell_invitation — accept or reject one AWS referral from the Airflow UI

An AWS referral is an engagement invitation addressed to us in Partner Central; `cosell_reconcile` turns
each one into a HubSpot deal (`aws_invitation_id`) and acts on the seller's `aws_invitation_action`. This DAG
does the same for one invitation from the trigger form:

- **Accept**: the deal is created if it does not exist yet, the decision is written on it, and
  `StartEngagementByAcceptingInvitationTask` runs (ClientToken from the invitation: accepting twice
  gives the same task). The wait is deferred (no worker slot held); when AWS completes the task, the new
  opportunity is linked to the same deal (`aws_opportunity_id`) and synced from then on. A failed task
  puts its reason in the deal's `aws_sync_error` and in a task for the owner.
- **Reject**: `RejectEngagementInvitation` with the reason (1-80 characters, as the API takes it); the deal
  is closed as lost.

Params: `invitation_id` (`engi-...`), `action` (`Accept` | `Reject`), `rejection_reason`, `catalog`.
An invitation not addressed to this account, or a run conf key that is none of these, fails at once.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from cosell_runtime.params import catalog_param
from cosell_runtime.triggers import PartnerCentralJobsSensor

DEFAULT_ARGS = {
    "owner": "cosell-sync",
    "retries": 1,
    "retry_delay": pendulum.duration(minutes=1),
}


@dag(
    dag_id="cosell_invitation",
    description="Accept or reject one AWS referral (engagement invitation); the deal follows.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["cosell", "partner-central", "hubspot", "referrals"],
    doc_md=__doc__,
    params={
        "invitation_id": Param(
            type="string",
            pattern=r"^engi-[0-9a-z]{13}$",
            title="Invitation id",
            description="The engagement invitation, e.g. engi-0123456789abc (the deal's AWS Invitation ID).",
        ),
        "action": Param(type="string", enum=["Accept", "Reject"], title="Action"),
        "rejection_reason": Param(
            "",
            type="string",
            maxLength=80,
            title="Rejection reason",
            description="Sent to AWS with a rejection (at most 80 characters).",
        ),
        "catalog": catalog_param(),
    },
    render_template_as_native_obj=True,
)
def cosell_invitation() -> None:
    """Wire decide -> deferred wait -> link; the logic lives in ``cosell_sync.invitations``."""

    @task(pool="partner_central_writes")
    def decide(**context: object) -> dict:
        """Write the decision on the deal and send it to Partner Central."""
        from cosell_runtime.tasks import invitation_decide

        return invitation_decide(context)

    @task
    def link(decided: dict) -> dict:
        """Link the accepted invitation's opportunity to its deal, or show the failure on the deal."""
        from cosell_runtime.tasks import invitation_link

        return invitation_link(decided)

    decided = decide()
    waited = PartnerCentralJobsSensor(
        task_id="wait_for_accept_task",
        kind="accept_invitation_task",
        job_ids=decided["tasks"],
        catalog=decided["catalog"],
        retries=3,
    )
    linked = link(decided)
    waited >> linked


cosell_invitation()
